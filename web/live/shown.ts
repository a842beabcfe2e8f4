// The live view's text from processes and the network (paths, names, DNS names, rule names) as
// it is shown: control and invisible characters escaped as moat's CLI prints them (printable()),
// and the parts set apart so the page can isolate them. Pure: the Node tests call it.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import type { ReviewEntry } from "../../src/api/control.ts";
import { printable } from "../../src/config/printable.ts";

/**
 * A row's cell texts. Who, the remote's name and the rule come from processes and the network:
 * their control and invisible characters are shown escaped (as moat's CLI prints them), and the
 * CSS isolates those cells, so a bidi override cannot reorder what a row says.
 */
export function cellTexts(r: FlowRow): string[] {
  return [
    printable(r.identity),
    printable(r.names[0] ?? r.l7name ?? r.remote),
    `${r.port}/${r.protocol}`,
    r.verdict,
    printable(r.rule),
    String(r.count),
    r.lastSeen.slice(11, 19),
  ];
}

/** Text from outside (a DNS name, a process path): escaped, and shown isolated in a <bdi>. */
export type Part = string | { outside: string };

/** An entry in words; the name and the process path as outside parts. */
export function describe(e: ReviewEntry): Part[] {
  const name = e.remote.names?.[0];
  const where: Part[] = name ? [{ outside: printable(name) }, ` (${e.remote.ip})`] : [e.remote.ip];
  const port = e.port !== undefined ? `:${e.port}` : "";
  const who: Part[] = e.process
    ? [" by ", { outside: printable(e.process.path || e.process.name) }]
    : [];
  return [`${e.verdict} ${e.direction} ${e.protocol} `, ...where, port, ...who, `, ×${e.count}`];
}
