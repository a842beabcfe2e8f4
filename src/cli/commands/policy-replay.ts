// moat policy replay FILE [--since 24h] [--until TIME] [--baseline recorded|running] [--limit N]
// [--json]: what the draft FILE would newly block, allow or detect among the connections the
// running daemon stored, grouped by process and remote (POST /v1/policy/replay).
import { readFileSync } from "node:fs";
import type { ReplayGroup, ReplaySample } from "../../policy/index.ts";
import type { ReplayAnswer } from "../../api/index.ts";
import { printable } from "../../config/index.ts";
import { UsageError, type Io, type OptionValues } from "../command.ts";
import { apiTarget, ApiClientError, call } from "../api/client.ts";
import { jsonLine } from "../json-line.ts";
import { parseTimePoint } from "../time-args.ts";

export const REPLAY_OPTIONS = {
  since: { type: "string" },
  until: { type: "string" },
  baseline: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
} as const;

export const REPLAY_USAGE =
  "moat policy replay FILE [--since 24h|TIME] [--until TIME] [--baseline recorded|running] [--limit N] [--json]";

const HEADINGS = {
  blocked: "newly blocked",
  allowed: "newly allowed",
  detected: "newly detected",
} as const;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function groupLine(g: ReplayGroup): string {
  const arrow = g.direction === "ingress" ? "<-" : "->";
  const port = g.port === null ? g.protocol : `${g.port}/${g.protocol}`;
  const was = Object.entries(g.was)
    .map(([verdict, n]) => `${verdict} ${n}`)
    .join(", ");
  const rules = g.rules.map((r) => r.rule).join(", ");
  return `  ${String(g.count).padStart(6)}  ${g.process} ${arrow} ${g.remote} ${port} (was ${was}) by ${rules}`;
}

function sampleLine(s: ReplaySample): string {
  const [from, to] = s.direction === "ingress" ? [s.remote, s.local] : [s.local, s.remote];
  const who = s.process ? ` (${s.process})` : "";
  return `          ${s.time} ${from} -> ${to}${who}: was ${s.was.verdict} by ${s.was.rule}; ${s.now.reason}`;
}

/** The report in words, largest changes first, a sample event under each group. */
export function replayLines(r: ReplayAnswer): string[] {
  const out = [
    `replayed ${plural(r.replayed, "connection")} from ${plural(r.scanned, "stored event")}, ${r.since} to ${r.until}, against the ${r.baseline === "running" ? "running policy" : "verdicts recorded"}`,
  ];
  if (r.notScanned > 0)
    out.push(`  ${r.notScanned} older events in the window were not read (limit ${r.limit})`);
  for (const change of ["blocked", "allowed", "detected"] as const) {
    const list = r.changes[change];
    out.push(`${HEADINGS[change]}: ${plural(list.count, "connection")}`);
    for (const g of list.groups) {
      out.push(groupLine(g));
      const first = g.samples[0];
      if (first) out.push(sampleLine(first));
    }
    if (list.unlisted > 0) out.push(`  ... and ${list.unlisted} more in smaller groups`);
  }
  out.push(`unchanged: ${plural(r.unchanged, "connection")}`);
  out.push(
    `applying it changes: ${r.policyChanges.length ? r.policyChanges.join("; ") : "nothing enforced"}`,
  );
  if (r.undecided.count > 0) {
    const needs = Object.entries(r.undecided.needs)
      .map(([need, n]) => `${need} ${n}`)
      .join(", ");
    out.push(
      `undecided: ${plural(r.undecided.count, "connection")} (the stored events lack: ${needs})`,
    );
  }
  const s = r.skipped;
  if (s.repeats + s.dns + s.summaries + s.unreadable > 0)
    out.push(
      `not replayed: ${s.repeats} repeated events of a connection, ${s.summaries} summaries of connections stored one by one, ${s.dns} DNS exchanges, ${s.unreadable} unreadable`,
    );
  return out.map(printable);
}

export async function policyReplay(
  values: OptionValues,
  positionals: string[],
  io: Io,
): Promise<number> {
  const [, file] = positionals;
  if (!file || positionals.length > 2) throw new UsageError(`usage: ${REPLAY_USAGE}`);
  const body: Record<string, unknown> = { text: readFileSync(file, "utf8") };
  // times read here, in the shell's zone, and sent as ms: the daemon's zone may be another
  for (const key of ["since", "until"] as const)
    if (typeof values[key] === "string") body[key] = parseTimePoint(values[key], `--${key}`);
  if (typeof values.baseline === "string") body.baseline = values.baseline;
  if (typeof values.limit === "string") {
    if (!/^\d+$/.test(values.limit)) throw new UsageError("--limit must be a whole number");
    body.limit = Number(values.limit);
  }
  let report: ReplayAnswer;
  try {
    report = await call<ReplayAnswer>(
      apiTarget(values),
      "POST",
      "/v1/policy/replay",
      JSON.stringify(body),
    );
  } catch (err) {
    if (!(err instanceof ApiClientError) || err.status !== 422) throw err;
    for (const line of err.details) io.err(line);
    io.err(`moat: ${file}: ${err.message}`);
    return 1;
  }
  for (const w of report.warnings) io.err(printable(w));
  if (values.json) io.out(jsonLine(report));
  else for (const line of replayLines(report)) io.out(line);
  return 0;
}
