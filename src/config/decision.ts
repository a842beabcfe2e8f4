// A local decision: a person's allow or block of one destination (a host, a DNS name or a name
// pattern), made from the review queue or with `moat decisions add`, with a lifetime. moat stores
// decisions itself, beside the policy file it never rewrites for them; they are judged in one
// layer before the file's rules (docs/policy.md, "Local decisions"). Pure: the evaluator, the
// compiler and the browser read them the same way.
import { parseAddressEntry } from "./address-entry.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import type { LocalDecision } from "./model.ts";
import { processUserProblem } from "./process-user.ts";

/** How long a decision holds: its first connection, until the host reboots, forever, or seconds. */
export type DecisionLifetime = "once" | "reboot" | "forever" | { seconds: number };

/** The protocols a decision may name. */
export const DECISION_PROTOCOLS = ["tcp", "udp", "icmp", "icmpv6"] as const;

/** "once" waits this long for its connection, then expires unused. */
export const ONCE_WAIT_SECONDS = 600;

/** "once" | "reboot" | "forever" | a duration ("1h", "30s", "1h30m"). */
export function parseLifetime(
  text: string,
): { ok: true; value: DecisionLifetime } | { ok: false; error: string } {
  if (text === "once" || text === "reboot" || text === "forever") return { ok: true, value: text };
  const d = parseDuration(text);
  if (!d.ok)
    return {
      ok: false,
      error: `lifetime '${text}' is not once, reboot, forever or a duration (1h, 30m, 90s)`,
    };
  return { ok: true, value: { seconds: d.value } };
}

/** The lifetime in words, for tables and explanations. */
export function describeLifetime(d: Pick<LocalDecision, "lifetime" | "expires">): string {
  if (d.lifetime === "reboot") return "until reboot";
  if (d.lifetime === "forever") return "forever";
  if (d.lifetime === "once") return "once";
  const seconds = parseDuration(d.lifetime);
  const span = seconds.ok ? formatDuration(seconds.value) : d.lifetime;
  return d.expires ? `${span}, until ${d.expires}` : span;
}

const ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

/**
 * `moat mode`: the policy's global mode decided at run time, as if the file said it; kept with the
 * local decisions until another `moat mode` (`moat mode policy`: the file's mode again).
 */
export interface ModeDecision {
  mode: "detect" | "prevent";
  by: string;
  /** ISO time. */
  created: string;
}

/** What is wrong with a stored mode decision (none: it is one). */
export function modeDecisionProblems(value: unknown): string[] {
  const m = value as Partial<ModeDecision> | null;
  if (typeof m !== "object" || m === null) return ["a mode decision is an object"];
  const problems: string[] = [];
  if (m.mode !== "detect" && m.mode !== "prevent") problems.push("mode: detect or prevent");
  if (typeof m.by !== "string") problems.push("by: who made it");
  if (typeof m.created !== "string" || Number.isNaN(Date.parse(m.created)))
    problems.push("created: an ISO time");
  return problems;
}

/** Every field a stored decision has (typed: a field added to LocalDecision is named here). */
const DECISION_FIELDS: Record<keyof LocalDecision, true> = {
  id: true,
  action: true,
  direction: true,
  remote: true,
  protocol: true,
  port: true,
  process: true,
  lifetime: true,
  created: true,
  expires: true,
  boot: true,
  by: true,
  review: true,
};
const DECISION_KEYS: readonly string[] = Object.keys(DECISION_FIELDS);
/** A decision's process keys (typed: a key added to its process is named here). */
const PROCESS_FIELDS: Record<keyof NonNullable<LocalDecision["process"]>, true> = {
  path: true,
  user: true,
};
const PROCESS_KEYS: readonly string[] = Object.keys(PROCESS_FIELDS);

const unknownKeysText = (keys: string[]): string =>
  `unknown key${keys.length > 1 ? "s" : ""} ${keys.join(", ")}`;

/**
 * The keys of `value` (and of its `process`) that are not a decision's: each would be kept
 * without meaning anything (a misspelt `ports` leaves the decision for every port).
 */
export function unknownDecisionKeys(value: object): string[] {
  const d = value as Record<string, unknown>;
  const unknown = Object.keys(d).filter((k) => !DECISION_KEYS.includes(k));
  const p = d.process;
  if (typeof p === "object" && p !== null && !Array.isArray(p))
    unknown.push(
      ...Object.keys(p)
        .filter((k) => !PROCESS_KEYS.includes(k))
        .map((k) => `process.${k}`),
    );
  return unknown;
}

/** What is wrong with a decision read from a file or a request (none: it is one). */
export function decisionProblems(value: unknown): string[] {
  if (typeof value !== "object" || value === null) return ["a decision is an object"];
  const d = value as Record<string, unknown>;
  const unknown = unknownDecisionKeys(d);
  const problems: string[] = unknown.length > 0 ? [unknownKeysText(unknown)] : [];
  const text = (k: string) => typeof d[k] === "string";
  if (!text("id") || !ID.test(d.id as string)) problems.push("id: [a-z0-9][a-z0-9-]* (32 at most)");
  if (d.action !== "allow" && d.action !== "block") problems.push("action: allow or block");
  if (d.direction !== "ingress" && d.direction !== "egress")
    problems.push("direction: ingress or egress");
  if (!text("remote")) problems.push("remote: an IP address, a name or a name pattern");
  else {
    const entry = parseAddressEntry(d.remote as string);
    if (!entry.ok) problems.push(`remote: ${entry.error}`);
    else if (entry.value.negate || entry.value.target.kind === "set")
      problems.push(`remote: '${d.remote as string}' is not an address, a name or a name pattern`);
  }
  if (d.protocol !== undefined && !(DECISION_PROTOCOLS as readonly unknown[]).includes(d.protocol))
    problems.push(`protocol: one of ${DECISION_PROTOCOLS.join(", ")}`);
  if (d.port !== undefined) {
    if (!Number.isInteger(d.port) || (d.port as number) < 1 || (d.port as number) > 65535)
      problems.push("port: 1-65535");
    else if (d.protocol !== "tcp" && d.protocol !== "udp")
      problems.push("port: only with protocol tcp or udp");
  }
  if (d.process !== undefined) {
    const p = d.process as { path?: unknown; user?: unknown } | null;
    if (typeof p?.path !== "string" || !p.path.startsWith("/"))
      problems.push("process.path: an absolute path (or glob)");
    const user = p?.user === undefined ? null : processUserProblem(p.user);
    if (user) problems.push(user);
  }
  if (!text("lifetime") || !parseLifetime(d.lifetime as string).ok)
    problems.push("lifetime: once, reboot, forever or a duration (1h, 30m, 90s)");
  if (!text("created") || Number.isNaN(Date.parse(d.created as string)))
    problems.push("created: an ISO time");
  if (
    d.expires !== undefined &&
    (!text("expires") || Number.isNaN(Date.parse(d.expires as string)))
  )
    problems.push("expires: an ISO time");
  if (!text("by")) problems.push("by: who made it");
  return problems;
}
