// An identity as the roll-ups key it (executable path, else the process name, marked name-only;
// user; container) and what a rule says of it: the `process` section naming it, a rule-name
// slug, a roll-up row as the evaluator's facts, and which policy rule decides a row.
import type { AddressEntry, PolicyModel, Rule } from "../../config/model.ts";
import { parseIp } from "../../config/ip.ts";
import { evaluate } from "../../policy/evaluator.ts";
import { perRules } from "../../policy/per-model.ts";
import type { ConnectionFacts } from "../../policy/facts.ts";
import type { LearnRow } from "./learn-rows.ts";

export interface Identity {
  exe: string;
  /** `exe` is the process's name (comm): it names no executable, whatever it reads like. */
  nameOnly: boolean;
  user: number;
  container: string;
}

export const PORTED = new Set(["tcp", "udp"]);

/** A roll-up row as the evaluator's facts: a peer known by name has no address to match. */
export function rowFacts(r: LearnRow): ConnectionFacts {
  const ip = parseIp(r.peer);
  const remoteIp = ip.ok ? r.peer : "0.0.0.0";
  const protocol = /^\d+$/.test(r.protocol) ? Number(r.protocol) : r.protocol;
  const ported = PORTED.has(r.protocol);
  const remote: ConnectionFacts["remote"] = ported
    ? { ip: remoteIp, port: r.direction === "egress" ? r.port : 40000 }
    : { ip: remoteIp };
  if (!ip.ok) remote.names = [r.peer];
  const local = ported
    ? { ip: "0.0.0.0", port: r.direction === "ingress" ? r.port : 40000 }
    : { ip: "0.0.0.0" };
  const facts: ConnectionFacts = {
    direction: r.direction as ConnectionFacts["direction"],
    protocol: protocol as ConnectionFacts["protocol"],
    family: remoteIp.includes(":") ? 6 : 4,
    local,
    remote,
  };
  if (r.exe) {
    facts.process = {
      name: commOf(r),
      // a comm is no path, even one that reads like one: a rule's path never matches it
      ...(r.nameOnly ? {} : { path: r.exe }),
      ...(r.user >= 0 ? { user: r.user } : {}),
      container: r.container ? { name: r.container, id: r.container } : null,
    };
  }
  return facts;
}

type Decided = "default" | "rule" | "undecided";

function decided(model: PolicyModel, facts: ConnectionFacts): { by: Decided; rule: string } {
  const e = evaluate(model, facts);
  if (e.verdict !== "deferred")
    return { by: e.rule === "default" ? "default" : "rule", rule: e.rule };
  const by = e.possible.every((d) => d.rule === "default") ? "default" : "undecided";
  return { by, rule: "" };
}

/** How the current policy decides a row: "default", "rule" or "undecided". */
export function decidedBy(model: PolicyModel, r: LearnRow): Decided {
  const facts = rowFacts(r);
  if (!facts.remote.names) return decided(model, facts).by;
  // a peer known by name: its address is unknown, so address entries do not match it, and a
  // rule that could match whatever the address (an exclusion, all of a family) leaves it open
  const { narrow, wide } = byNameModels(model);
  const a = decided(narrow, facts);
  if (narrow === wide) return a.by;
  const b = decided(wide, facts);
  return a.by === b.by && a.rule === b.rule ? a.by : "undecided";
}

/** How a remote entry can match a peer whose address is unknown. */
type Fate = "name" | "never" | "maybe";

const FULL = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;

function fateOf(e: AddressEntry): Fate {
  switch (e.kind) {
    case "hostname":
      return "name";
    case "interval":
      // an exclusion may or may not hold the address; a whole family may be the peer's
      return e.negate || (e.start === 0n && e.end === FULL[e.family]) ? "maybe" : "never";
    case "set": {
      const fates = e.entries.map(fateOf);
      if (fates.includes("maybe") || (e.negate && fates.includes("never"))) return "maybe";
      return fates.includes("name") ? "name" : "never";
    }
  }
}

/**
 * The rule as judged for a peer known by name: unchanged, without its address entries, or
 * (null) never matching; "maybe" when the answer turns on the unknown address.
 */
function byNameRule(rule: Rule): Rule | null | "maybe" {
  const list = rule.layer3?.remote;
  if (!list?.entries.length) return rule;
  const fates = list.entries.map(fateOf);
  if (fates.includes("maybe")) return "maybe";
  if (!fates.includes("never")) return rule;
  const kept = list.entries
    .filter((_, i) => fates[i] === "name")
    .map((e) =>
      e.kind === "set" ? { ...e, entries: e.entries.filter((m) => m.kind === "hostname") } : e,
    );
  // every entry that could include the peer is an address: the rule never matches it
  if (!kept.some((e) => !e.negate)) return null;
  return { ...rule, layer3: { ...rule.layer3!, remote: { ...list, entries: kept } } };
}

/**
 * The policy as it judges a peer known by name, both ways an unknown address can go: `narrow`
 * where the rules that turn on it do not match, `wide` where they match (the same object when
 * no rule does). A row both judge alike is decided; else undecided.
 */
const byNameModels = perRules((model: PolicyModel): { narrow: PolicyModel; wide: PolicyModel } => {
  const narrow: Rule[] = [];
  const wide: Rule[] = [];
  let changed = false;
  let open = false;
  for (const rule of model.rules) {
    const r = byNameRule(rule);
    if (r !== rule) changed = true;
    if (r === "maybe") {
      open = true;
      const layer3 = { ...rule.layer3! };
      delete layer3.remote;
      wide.push({ ...rule, layer3 });
    } else if (r) {
      narrow.push(r);
      wide.push(r);
    }
  }
  const index = (rules: Rule[]) => rules.map((r, i) => (r.index === i ? r : { ...r, index: i }));
  const narrowModel = changed ? { ...model, rules: index(narrow) } : model;
  return {
    narrow: narrowModel,
    wide: open ? { ...model, rules: index(wide) } : narrowModel,
  };
});

/**
 * Whether a `process` section can name exactly this identity: its fields are globs with no
 * escape, so a path, name or container holding `*` or `?` would match others too.
 */
export const expressible = (id: Identity): boolean => !/[*?]/.test(id.exe + id.container);

/**
 * A process known only by a name holding a slash: exec never gives one (it sets the comm to the
 * file's name), so the process chose it, or it is a stored row from before the name-only mark
 * whose short path cannot be told from such a name. No rule is proposed by it.
 */
export const pathLikeName = (id: Identity): boolean => id.nameOnly && id.exe.includes("/");

/** The `process` section that names an identity; null when the flows had no process. */
export function processSection(id: Identity): Record<string, unknown> | null {
  if (!id.exe) return null;
  const out: Record<string, unknown> = id.nameOnly ? { name: id.exe } : { path: id.exe };
  if (id.user >= 0) out.user = [id.user];
  // the roll-ups keep a container's name, else its id: only a full id is surely an id (a
  // shorter hex `id` matches every id it starts)
  if (id.container)
    out.container = /^[0-9a-f]{64}$/.test(id.container)
      ? { id: id.container }
      : { name: id.container };
  return out;
}

export function slugOf(id: Identity): string {
  const base = (id.nameOnly ? id.exe : id.exe.slice(id.exe.lastIndexOf("/") + 1)) || "host";
  const text = `${id.container ? `${id.container}-` : ""}${base}`;
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40) || "process"
  );
}

type Keyed = { exe: string; nameOnly: boolean; user: number; container: string };

/** The comm a process of this identity has: its name, or its file name as exec sets it. */
const commOf = (r: Keyed) =>
  r.nameOnly ? r.exe : r.exe.slice(r.exe.lastIndexOf("/") + 1).slice(0, 15);

export const nameKey = (r: Keyed) => `${commOf(r)}\0${r.user}\0${r.container}`;

/**
 * A connection whose process exited before moat read its executable is keyed by its name
 * (comm): it joins the identity whose executable has that file name (as comm shortens it), user
 * and container, when exactly one does. A name with a slash joins none: exec never gives one
 * (the process set it itself).
 */
export function pathsByName(rows: readonly Keyed[]): Map<string, string> {
  const paths = new Map<string, Set<string>>();
  for (const r of rows) {
    if (r.nameOnly || !r.exe) continue;
    const key = nameKey(r);
    paths.set(key, (paths.get(key) ?? new Set()).add(r.exe));
  }
  const out = new Map<string, string>();
  for (const [key, set] of paths) if (set.size === 1) out.set(key, [...set][0]!);
  return out;
}
