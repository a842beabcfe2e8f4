// moat set add|del|list: change a dynamic set of the running daemon (applied at once, kept
// across restarts) and list dynamic sets and feeds.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import type { SetChangeOutcome, SetView } from "../../api/index.ts";
import { jsonLine } from "../json-line.ts";
import { parseDuration } from "../time-args.ts";
import { printable } from "../../config/index.ts";

const USAGE = `moat set add SET ENTRY [--timeout DURATION] | del SET ENTRY | list [SET] [--json] ${API_USAGE}`;

export const setCommand: Command = {
  name: "set",
  summary: "add to or remove from a dynamic set of the running daemon; list dynamic sets and feeds",
  usage: USAGE,
  actions: ["add", "del", "list"],
  options: { ...API_OPTIONS, json: { type: "boolean" }, timeout: { type: "string" } },
  async run({ values, positionals }, io) {
    const [action, set, entry] = positionals;
    const target = apiTarget(values);
    if (action === "list" && positionals.length <= 2) {
      if (values.timeout !== undefined) throw new UsageError(`usage: ${USAGE}`);
      const { sets } = await call<{ sets: SetView[] }>(target, "GET", "/v1/sets");
      const shown = set === undefined ? sets : sets.filter((s) => s.name === set);
      if (set !== undefined && shown.length === 0)
        throw new UsageError(`the running policy has no dynamic set or feed '${set}'`);
      if (values.json) io.out(jsonLine({ sets: shown }));
      else if (shown.length === 0) io.out("the running policy has no dynamic set or feed");
      else for (const s of shown) for (const line of setLines(s)) io.out(line);
      return 0;
    }
    if ((action !== "add" && action !== "del") || !set || !entry || positionals.length !== 3)
      throw new UsageError(`usage: ${USAGE}`);
    if (action === "del" && values.timeout !== undefined)
      throw new UsageError("--timeout goes with 'moat set add'");
    const timeout = typeof values.timeout === "string" ? timeoutSeconds(values.timeout) : undefined;
    const r = await call<SetChangeAnswer>(
      target,
      "POST",
      `/v1/sets/${action}`,
      JSON.stringify({ set, entry, ...(timeout !== undefined ? { timeout } : {}) }),
    );
    if (values.json) {
      io.out(jsonLine(r));
      return 0;
    }
    // an add taken in another form (a CIDR's network, a mapped address's IPv4) says which, and why
    for (const w of r.warnings ?? []) io.err(`warning: ${printable(w)}`);
    const done = action === "add" ? "added" : "removed";
    io.out(
      `set ${set}: ${done} ${printable(r.entry ?? entry)} (${r.entries} entries, generation ${r.generation})`,
    );
    return 0;
  },
};

/** The daemon's answer to an add or a del (what src/daemon/dynamic-sets.ts answers). */
type SetChangeAnswer = Extract<SetChangeOutcome, { ok: true }> & {
  entry?: string;
  warnings?: string[];
};

/** --timeout in whole seconds (a part of a second counts as one); 0 is refused. */
function timeoutSeconds(text: string): number {
  const ms = parseDuration(text, "--timeout");
  if (ms <= 0)
    throw new UsageError(
      `--timeout '${text}': an entry's timeout must be a positive duration (e.g. 30s, 1h); leave it out for the set's timeout`,
    );
  return Math.ceil(ms / 1000);
}

function setLines(s: SetView): string[] {
  if (s.kind === "dynamic") {
    const head = `${s.name} (dynamic, ${s.entries?.length ?? 0} entries${s.timeout ? `, timeout ${s.timeout}s` : ""})`;
    return [
      head,
      ...(s.entries ?? []).map((e) => `  ${e.entry}${e.expires ? `  expires ${e.expires}` : ""}`),
    ];
  }
  const f = s.feed ?? {};
  const parts = [
    `${s.count} entries`,
    ...(f.refused ? [`${f.refused} not taken`] : []),
    ...(f.category ? [`category ${f.category}`] : []),
    ...(f.confidence !== undefined ? [`confidence ${f.confidence}`] : []),
  ];
  const lines = [`${s.name} (feed, ${parts.join(", ")})`];
  if (f.url) lines.push(`  ${f.url}`);
  if (f.lastFetch) lines.push(`  last fetch ${f.lastFetch}: ${f.lastResult ?? "in progress"}`);
  if (f.lastChange) lines.push(`  last change ${f.lastChange}`);
  return lines;
}
