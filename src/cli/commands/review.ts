// moat review: the review queue of unknown connections (docs/policy.md, "Decide later"). On a
// terminal with no action it asks about each entry in turn; `list`, `allow ID`, `block ID` do
// the same without asking. An answer becomes a local decision through the daemon's one install
// path; nothing in the queue is ever decided by itself.
import { createInterface } from "node:readline/promises";
import type { Command, Io, OptionValues } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call, type ApiTarget } from "../api/client.ts";
import type { DecisionOutcome, ReviewAnswer, ReviewEntry, ReviewView } from "../../api/index.ts";
import { printable } from "../../config/index.ts";
import { EXIT } from "../exit-codes.ts";
import { jsonLine } from "../json-line.ts";
import { printOutcome } from "./decisions.ts";

const SHORT_USAGE =
  "moat review [list | allow ID | block ID] [--scope host|domain|wildcard] [--name NAME] [--lifetime L]";

const USAGE = `${SHORT_USAGE}
             [--json] ${API_USAGE}
  With no action on a terminal: each queued connection in turn, asking allow, block or skip.
  list (the default elsewhere): the queue, one line an entry; --json: entries and overflow.
  allow ID / block ID: a local decision for the entry's host (--scope host, the default), the
    name it was resolved from (domain) or every name below its parent, never above its
    registrable domain (wildcard; --name gives the name or pattern); --lifetime once (default),
    1h, reboot, forever or any duration. An allow names the executable (for egress), not the
    user; a program known only by its name cannot be allowed from here.`;

export const reviewCommand: Command = {
  name: "review",
  summary: "decide about unknown connections waiting in the review queue (allow or block)",
  usage: USAGE,
  actions: ["list", "allow", "block"],
  options: {
    ...API_OPTIONS,
    json: { type: "boolean" },
    scope: { type: "string" },
    name: { type: "string" },
    lifetime: { type: "string" },
  },
  async run({ values, positionals }, io) {
    const target = apiTarget(values);
    const json = values.json === true;
    const [action, id, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`usage: ${SHORT_USAGE}`);
    if (action === undefined && process.stdin.isTTY && process.stdout.isTTY && !json)
      return interactive(target, io);
    if ((action === undefined || action === "list") && id === undefined) {
      const view = await call<ReviewView>(target, "GET", "/v1/review");
      if (json) io.out(jsonLine(view));
      else printQueue(view, io);
      return EXIT.ok;
    }
    if ((action === "allow" || action === "block") && id) {
      const outcome = await decide(target, answerOf(action, id, values));
      printOutcome(outcome, "made", json, io);
      return EXIT.ok;
    }
    throw new UsageError(`usage: ${SHORT_USAGE}`);
  },
};

function answerOf(action: "allow" | "block", id: string, values: OptionValues): ReviewAnswer {
  const scope = values.scope ?? "host";
  if (scope !== "host" && scope !== "domain" && scope !== "wildcard")
    throw new UsageError("--scope: host, domain or wildcard");
  const lifetime = typeof values.lifetime === "string" ? values.lifetime : "once";
  const name = typeof values.name === "string" ? values.name : undefined;
  return { id, action, scope, lifetime, ...(name ? { name } : {}) };
}

const decide = (target: ApiTarget, answer: ReviewAnswer) =>
  call<DecisionOutcome>(target, "POST", "/v1/review/decide", JSON.stringify(answer));

/**
 * One line an entry: id, what and who, how often. Escaped: an executable's path and a looked-up
 * name are anyone's to choose, and must not move the cursor over the question that follows.
 */
export function reviewLine(e: ReviewEntry): string {
  const names = e.remote.names?.length
    ? `${e.remote.names.join(",")} (${e.remote.ip})`
    : e.remote.ip;
  const port = e.port !== undefined ? `:${e.port}` : "";
  // a process that exited before its executable was read is known by its name (comm), which
  // anyone sets, a slash included: never shown as a path (a decision for it names no executable)
  const who = !e.process
    ? ""
    : e.process.path
      ? ` by ${e.process.path} (uid ${e.process.user})`
      : ` by a process named ${e.process.name} (uid ${e.process.user}, executable unknown)`;
  return printable(
    `${e.id}  ${e.verdict} ${e.direction} ${e.protocol} ${names}${port}${who}  x${e.count}, last ${e.last}`,
  );
}

function printQueue(view: ReviewView, io: Io): void {
  if (view.entries.length === 0) io.out("the review queue is empty");
  for (const e of view.entries) io.out(reviewLine(e));
  if (view.overflow > 0)
    io.out(`${view.overflow} connection(s) not queued: the queue holds ${view.max} at most`);
}

const LIFETIMES: Record<string, string> = { o: "once", h: "1h", r: "reboot", f: "forever" };

async function interactive(target: ApiTarget, io: Io): Promise<number> {
  const view = await call<ReviewView>(target, "GET", "/v1/review");
  if (view.entries.length === 0) {
    io.out("the review queue is empty");
    return EXIT.ok;
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    for (const e of view.entries) {
      io.out(reviewLine(e));
      const what = (await rl.question("  [a]llow, [b]lock, [s]kip, [q]uit? ")).trim();
      if (what === "q") break;
      if (what !== "a" && what !== "b") continue;
      const named = !!e.remote.names?.length;
      const scopeKey = named
        ? (await rl.question("  by [h]ost, [d]omain or [w]ildcard? ")).trim()
        : "h";
      const scope = scopeKey === "d" ? "domain" : scopeKey === "w" ? "wildcard" : "host";
      const life = (
        await rl.question("  for [o]nce, 1 [h]our, until [r]eboot, [f]orever? ")
      ).trim();
      const lifetime = LIFETIMES[life] ?? "once";
      const outcome = await decide(target, {
        id: e.id,
        action: what === "a" ? "allow" : "block",
        scope,
        lifetime,
      }).catch((err: unknown) => ({ ok: false as const, errors: [(err as Error).message] }));
      if (outcome.ok) printOutcome(outcome, "  made", false, io);
      else io.out(`  refused: ${outcome.errors.join("; ")}`);
    }
  } finally {
    rl.close();
  }
  return EXIT.ok;
}
