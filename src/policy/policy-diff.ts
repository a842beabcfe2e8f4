// What a new policy changes against the running one, in words: the mode, the defaults, rules and
// redirects added, removed, changed or moved (by name), sets whose entries changed, and other
// sections changed. The audit line of an applied policy carries it, and the web console shows it
// before Apply. Positions in the file are not a change: moving text around is not.
import type { PolicyModel } from "../config/model.ts";

/** A value as comparable text: no source positions or indexes, Maps and bigints spelled out. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (key, v: unknown) => {
    if (key === "pos" || key === "index") return undefined;
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Map) return [...v.entries()];
    if (v instanceof Set) return [...v];
    return v;
  });
}

function named<T extends { name: string }>(
  what: string,
  before: readonly T[],
  after: readonly T[],
  /** What of an entry counts (default: all of it). */
  meaning: (x: T) => unknown = (x) => x,
): string[] {
  const old = new Map(before.map((x) => [x.name, x]));
  const now = new Map(after.map((x) => [x.name, x]));
  const added = after.filter((x) => !old.has(x.name)).map((x) => x.name);
  const removed = before.filter((x) => !now.has(x.name)).map((x) => x.name);
  const same = (a: T, b: T) => canonical(meaning(a)) === canonical(meaning(b));
  const changed = after
    .filter((x) => {
      const was = old.get(x.name);
      return was !== undefined && !same(was, x);
    })
    .map((x) => x.name);
  const kept = (list: readonly T[], other: Map<string, T>) =>
    list.filter((x) => other.has(x.name)).map((x) => x.name);
  const out: string[] = [];
  if (added.length) out.push(`${what} added: ${added.join(", ")}`);
  if (removed.length) out.push(`${what} removed: ${removed.join(", ")}`);
  if (changed.length) out.push(`${what} changed: ${changed.join(", ")}`);
  if (kept(before, now).join("\0") !== kept(after, old).join("\0")) out.push(`${what} reordered`);
  return out;
}

const OTHER_SECTIONS = [
  "attach",
  "failure",
  "dns",
  "logging",
  "otel",
  "eventPublisher",
  "api",
  "anomaly",
] as const;

/** The changes from `before` to `after`, one phrase each; empty when they judge alike. */
export function policyChanges(before: PolicyModel, after: PolicyModel): string[] {
  const out: string[] = [];
  if (before.mode !== after.mode) out.push(`mode ${before.mode} -> ${after.mode}`);
  for (const d of ["ingress", "egress"] as const)
    if (before.defaults[d] !== after.defaults[d])
      out.push(`defaults.${d} ${before.defaults[d]} -> ${after.defaults[d]}`);
  // a rule without a mode of its own follows the policy's: the mode line says that change
  out.push(
    ...named("rules", before.rules, after.rules, (r) => (r.ownMode ? r : { ...r, mode: null })),
  );
  out.push(...named("redirects", before.redirects, after.redirects));
  out.push(...named("sets", [...before.sets.values()], [...after.sets.values()]));
  const sections = OTHER_SECTIONS.filter((s) => canonical(before[s]) !== canonical(after[s]));
  if (sections.length) out.push(`sections changed: ${sections.join(", ")}`);
  return out;
}

/** policyChanges as one audit phrase. */
export function changeSummary(before: PolicyModel, after: PolicyModel): string {
  const changes = policyChanges(before, after);
  return changes.length ? changes.join("; ") : "no change to what is enforced";
}
