// moat suggest [--since 7d] [--policy FILE] [--promote] [--json]: least-privilege rules learnt
// from the daemon's flow roll-ups, as a unified diff against the policy file (GET or POST
// /v1/policy/suggest). Nothing is applied: the diff goes to stdout, the reasons to stderr.
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Command, Io } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, ApiClientError, call } from "../api/client.ts";
import { jsonLine } from "../json-line.ts";
import { parseTimePoint } from "../time-args.ts";
import { printable } from "../../config/index.ts";
import type { SuggestAnswer } from "../../api/index.ts";

const USAGE = `moat suggest [--since 7d|TIME] [--policy FILE] [--stable 2d] [--siblings 3] [--addresses 8] [--output FILE] [--json]
       moat suggest --promote [--clean-days 7] [--policy FILE] [--output FILE] [--json]
  ${API_USAGE}`;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The answer in words (the diff aside): what was learnt from, proposed, left out and why. */
export function suggestLines(a: SuggestAnswer): string[] {
  const s = a.settings;
  const out: string[] = [];
  if (a.kind === "promote") {
    for (const p of a.promotions)
      out.push(
        p.proposed === null
          ? `kept in detect: ${p.name} (no "moat suggest DATE" comment above it: the days since it was added are unknown)`
          : `${p.promoted ? "promoted" : "kept in detect"}: ${p.name} (${plural(p.cleanDays, "clean day")} since ${p.proposed}, ${s.cleanDays} needed)`,
      );
    if (!a.promotions.length) out.push("no proposed rule in detect mode to promote");
    if (a.overflow.rows > 0)
      out.push(
        `nothing promoted: ${plural(a.overflow.rows, "identity day")} past the read cap were not read, and a day not read cannot be told from a clean one`,
      );
  } else {
    out.push(
      `learnt from the ${a.resolution} roll-ups ${s.since} to ${s.until}: ${plural(a.rules.length, "rule")} proposed in detect mode`,
    );
    for (const r of a.rules)
      out.push(
        `  ${r.name}: ${r.action} ${r.direction} ${r.remote.join(", ") || "any"} ${r.protocol}${r.ports.length ? ` ${r.ports.join(",")}` : ""} (${plural(r.hits, "connection")})`,
      );
    const n = a.notProposed;
    out.push(
      `not proposed: ${n.covered} connections a rule already decides, ${n.blocked} only ever blocked, ${n.unstable} first seen within the ${s.stableSeconds / 3600}h stability period, ${n.undecided} undecided, ${n.inexpressible} inexpressible, ${n.wildcard} of identities whose path, name or container holds * or ?, ${n.pathLikeName} of processes known only by a name with a slash (never a path), ${n.capped} past the caps`,
    );
    const o = a.overflow;
    if (o.rows + o.rolledUp > 0)
      out.push(
        `overflow: ${o.rows} roll-up rows past the row cap (${o.connections} connections), ${o.rolledUp} connections in the roll-ups' own overflow rows`,
      );
  }
  for (const p of a.problems) out.push(`problem in the suggested policy: ${p}`);
  out.push(
    a.diff.length
      ? "nothing was applied: review the diff, then `moat policy apply FILE` with the new text"
      : "no change to suggest",
  );
  return out.map(printable);
}

/**
 * The suggested policy as a new file of the caller's own, 0600, renamed over `path`: a file or
 * link another user planted there (a shared /tmp) is replaced, never written into or through,
 * so nobody else can edit the text between this write and `moat policy apply`.
 */
function writeOutput(path: string, text: string): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}`);
  writeFileSync(temporary, text, { flag: "wx", mode: 0o600 });
  try {
    renameSync(temporary, path);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}

export const suggestCommand: Command = {
  name: "suggest",
  summary:
    "suggest least-privilege rules learnt from the flow statistics, as a diff of the policy file",
  usage: USAGE,
  options: {
    ...API_OPTIONS,
    since: { type: "string" },
    policy: { type: "string" },
    stable: { type: "string" },
    siblings: { type: "string" },
    addresses: { type: "string" },
    promote: { type: "boolean" },
    "clean-days": { type: "string" },
    output: { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values, positionals }, io: Io) {
    if (positionals.length) throw new UsageError(`usage: ${USAGE}`);
    const params: Record<string, string | boolean> = {};
    // --since read here, in the shell's zone, and sent as ms: the daemon's zone may be another
    if (typeof values.since === "string")
      params.since = String(parseTimePoint(values.since, "--since"));
    for (const [option, key] of [
      ["stable", "stable"],
      ["siblings", "siblings"],
      ["addresses", "addresses"],
      ["clean-days", "clean_days"],
    ] as const)
      if (typeof values[option] === "string") params[key] = values[option];
    if (values.promote) params.promote = "1";
    const file = typeof values.policy === "string" ? values.policy : null;
    let answer: SuggestAnswer;
    try {
      answer = file
        ? await call<SuggestAnswer>(
            apiTarget(values),
            "POST",
            "/v1/policy/suggest",
            JSON.stringify({ ...params, text: readFileSync(file, "utf8"), name: basename(file) }),
          )
        : await call<SuggestAnswer>(
            apiTarget(values),
            "GET",
            `/v1/policy/suggest?${new URLSearchParams(params as Record<string, string>).toString()}`,
          );
    } catch (err) {
      if (!(err instanceof ApiClientError) || err.status !== 422) throw err;
      for (const line of err.details) io.err(line);
      io.err(`moat: ${file ?? "the running policy"}: ${err.message}`);
      return 1;
    }
    if (typeof values.output === "string") writeOutput(values.output, answer.text);
    for (const w of answer.warnings) io.err(printable(w));
    if (values.json) io.out(jsonLine(answer, 2));
    else {
      for (const line of answer.diff) io.out(line);
      for (const line of suggestLines(answer)) io.err(line);
    }
    return answer.problems.length ? 1 : 0;
  },
};
