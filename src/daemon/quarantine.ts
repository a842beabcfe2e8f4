// Quarantine: a connection matched by a rule with `quarantine: { set, timeout }` puts its local
// address (that one address: a connection names no other of its host's) into that dynamic set
// until the timeout (renewed by later matches), so rules naming the set give that address a
// stricter policy for a while. The entry is a dynamic set's like any other: it expires by
// itself, survives a restart, and `moat set del` lifts it early.
import { parseAddressEntry, type PolicyModel, type PolicySet } from "../config/index.ts";
import type { MoatEvent } from "../datapath/index.ts";
import type { DynamicSets } from "./dynamic-sets.ts";
import { quarantinesAny, ruleNamed } from "../policy/index.ts";

export interface QuarantineOptions {
  model: () => PolicyModel;
  sets: Pick<DynamicSets, "bulk">;
  log: (line: string) => void;
  now?: () => number;
}

const VERDICTS = new Set(["allowed", "blocked", "detected"]);

/** The entries of a policy's set, as written, made once per set object (a new one each apply). */
const entryTexts = new WeakMap<PolicySet, Set<string>>();
function setHolds(model: PolicyModel, name: string, entry: string): boolean {
  const set = model.sets.get(name);
  if (!set) return false;
  let texts = entryTexts.get(set);
  if (!texts) {
    texts = new Set(set.entries.map((e) => e.text));
    entryTexts.set(set, texts);
  }
  return texts.has(entry);
}

/** The IPv4-mapped form of 0.0.0.0 (::ffff:0.0.0.0). */
const MAPPED_ANY = 0xffffn << 32n;

/**
 * Whether `ip` is an unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0): the local address of a
 * connection refused at connect(), before the kernel chose one.
 */
function unspecified(ip: string): boolean {
  const parsed = parseAddressEntry(ip);
  if (!parsed.ok || parsed.value.target.kind !== "interval") return false;
  const { start, end } = parsed.value.target;
  return start === end && (start === 0n || start === MAPPED_ANY);
}

/** Returns what looks at each event (before it is pushed) for a quarantine to start. */
export function quarantiner(options: QuarantineOptions): (event: MoatEvent) => void {
  const now = options.now ?? Date.now;
  // until when an entry was last put in force: matches in a burst write it once, while the
  // running policy's set holds it (`moat set del` lifts it: the next match starts it again)
  const written = new Map<string, number>();
  // entries being written and applied: the matches meanwhile wait for that one
  const underWay = new Set<string>();
  // rules whose match had no local address to put in the set: said once a rule
  const noLocal = new Set<string>();
  return (event) => {
    if (!VERDICTS.has(event.type)) return;
    const model = options.model();
    if (!quarantinesAny(model)) return;
    const rule = ruleNamed(model, event.rule);
    const q = rule?.quarantine;
    if (!rule || !q) return;
    const ip = event.local.ip;
    // a connection refused at connect() has no local address: in the set, the unspecified
    // address would quarantine nothing, so such a match puts nothing there
    if (unspecified(ip)) {
      if (noLocal.has(rule.name)) return;
      noLocal.add(rule.name);
      options.log(
        `quarantine: rule ${rule.name} matched a connection refused at connect(), before it had a local address: nothing put in set ${q.set} (remote ${event.remote.ip})`,
      );
      return;
    }
    const key = `${q.set} ${ip}`;
    if (underWay.has(key)) return;
    const t = now();
    const expires = t + q.seconds * 1000;
    // renewed once half the timeout has gone by
    if ((written.get(key) ?? 0) > t + q.seconds * 500 && setHolds(model, q.set, ip)) return;
    written.delete(key);
    underWay.add(key);
    const why = `(rule ${rule.name}, remote ${event.remote.ip})`;
    void options.sets
      .bulk(
        q.set,
        { adds: [{ entry: ip, expires }], dels: [], replace: false, renew: true },
        `quarantine of ${ip} (rule ${rule.name})`,
      )
      .then(
        ({ dropped }) => {
          if (dropped === 0) {
            written.set(key, expires);
            options.log(
              `quarantine: ${ip} in set ${q.set} until ${new Date(expires).toISOString()} ${why}`,
            );
            return;
          }
          // not held: the next match tries again
          options.log(
            `quarantine: ${ip} not put in set ${q.set}: the set is full (max_entries) ${why}`,
          );
        },
        (err: unknown) =>
          options.log(`quarantine: ${ip} not put in set ${q.set}: ${(err as Error).message}`),
      )
      .finally(() => underWay.delete(key));
  };
}
