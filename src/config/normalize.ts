// The schema-valid document -> the normalized model, with every semantic check that needs more than
// the schema. Returns the model only when nothing was wrong; every problem found is in ctx.

import type { CheckContext } from "./check-context.ts";
import { parseIp } from "./ip.ts";
import type { SourcePos } from "./diagnostics.ts";
import type {
  Action,
  AddressList,
  Match,
  PolicyModel,
  PolicySet,
  Redirect,
  Rule,
} from "./model.ts";
import { normalizeMatch } from "./normalize-match.ts";
import { normalizeSets } from "./normalize-sets.ts";
import type { PolicyDocument, RuleDocument } from "./schema.ts";
import { parseDuration } from "./duration.ts";
import { timeoutTooLong } from "./dynamic-set-file.ts";
import { checkServices } from "./normalize-services.ts";
import { daemonFailure } from "./failure-daemon.ts";
import { dnsSettings } from "./dns-settings.ts";
import { eventsLostChoice } from "./failure-events.ts";
import { normalizeRateLimit } from "./normalize-rate-limit.ts";
import { anomalySettings } from "./anomaly-settings.ts";
import { normalizeSynFlood, normalizeUdpAmplification } from "./normalize-flood.ts";
import { normalizeIds } from "./normalize-ids.ts";

export function normalizePolicy(ctx: CheckContext, doc: PolicyDocument): PolicyModel | undefined {
  const { sets, files } = ctx.typed(["sets"])
    ? normalizeSets(ctx, doc)
    : { sets: new Map(), files: [] };
  const mode = doc.mode ?? "detect";
  if (doc.mode === undefined)
    ctx.warn(
      ["mode"],
      "'mode' is not set: moat runs in detect mode (reports, never drops); set mode: prevent to enforce",
    );
  const rules = ctx.typed(["rules"]) ? normalizeRules(ctx, doc, sets, mode) : [];
  const redirects = ctx.typed(["redirect"]) ? normalizeRedirects(ctx, doc, sets) : [];
  const services = checkServices(ctx, doc);
  const dns = dnsSettings(ctx, doc);
  const anomaly = anomalySettings(ctx, doc);
  const ids = normalizeIds(ctx, doc);
  if (ctx.diagnostics.some((d) => d.severity === "error")) return undefined;
  const defaults: PolicyModel["defaults"] = {
    ingress: doc.defaults?.ingress ?? "allow",
    egress: doc.defaults?.egress ?? "allow",
  };
  if (doc.defaults) defaults.pos = ctx.pos(["defaults"]);
  // a mistyped list was reported by the schema check; the model is not built then
  const entries = ctx.typed(["attach", "interfaces"]) ? doc.attach?.interfaces : undefined;
  const hooks = (entries ?? ["*"]).map((e) =>
    typeof e === "string"
      ? { name: e, ingress: "auto" as const }
      : { ingress: "auto" as const, ...e },
  );
  return {
    file: ctx.source.file,
    version: 1,
    mode,
    defaults,
    attach: {
      interfaces: {
        value: hooks.map((h) => h.name),
        pos: ctx.pos(["attach", "interfaces"]),
      },
      hooks,
      ...(doc.attach?.cgroup !== undefined
        ? { cgroup: { value: doc.attach.cgroup, pos: ctx.pos(["attach", "cgroup"]) } }
        : {}),
    },
    sets,
    rules,
    redirects,
    failure: {
      daemon: daemonFailure(doc),
      helper: doc.failure?.helper ?? "block",
      eventsLost: eventsLostChoice(doc),
      ...(doc.failure ? { pos: ctx.pos(["failure"]) } : {}),
    },
    dns,
    ...(anomaly ? { anomaly } : {}),
    ...services,
    ...scrubSettings(ctx, doc),
    ...normalizeSynFlood(ctx, doc, mode),
    ...normalizeUdpAmplification(ctx, doc, mode),
    ...(doc.flood?.icmp && ctx.clean(["flood", "icmp"])
      ? {
          icmpFlood: {
            maxSize: doc.flood.icmp.max_size,
            mode: doc.flood.icmp.mode ?? mode,
            pos: ctx.pos(["flood", "icmp"]),
          },
        }
      : {}),
    ...(doc.review?.silent_block !== undefined
      ? { review: { silentBlock: doc.review.silent_block, pos: ctx.pos(["review"]) } }
      : {}),
    ...ids,
    setFiles: [...files, ...(ids.ids?.files ?? [])],
  };
}

function normalizeRules(
  ctx: CheckContext,
  doc: PolicyDocument,
  sets: ReadonlyMap<string, PolicySet>,
  globalMode: "detect" | "prevent",
): Rule[] {
  const rules: Rule[] = [];
  const list = doc.rules ?? [];
  const names = new FirstUse(list);
  // a loop, not forEach with a closure: this runs for every rule of a big file
  for (let index = 0; index < list.length; index++) {
    const rule = normalizeRule(ctx, list[index] as RuleDocument, index, names, sets, globalMode);
    if (rule) rules.push(rule);
  }
  return rules;
}

/** The rule `raw` at rules[index]; undefined if it is wrong (reported). */
function normalizeRule(
  ctx: CheckContext,
  raw: RuleDocument,
  index: number,
  names: FirstUse,
  sets: ReadonlyMap<string, PolicySet>,
  globalMode: "detect" | "prevent",
): Rule | undefined {
  if (typeof raw !== "object" || raw === null) return undefined; // the schema said so
  const path = ["rules", index];
  if (ctx.cleanChild(path, "name")) {
    const first = names.firstOrNote(raw.name, index);
    if (first !== undefined)
      ctx.error(
        [...path, "name"],
        `duplicate rule name '${raw.name}' (first used at line ${ctx.pos(["rules", first]).line})`,
      );
  }
  const match = normalizeMatch(ctx, raw, path, sets);
  if (raw.layer4?.max_duration !== undefined && raw.action === "block")
    ctx.warn([...path, "layer4", "max_duration"], "'max_duration' has no effect on a block rule");
  const rateLimit = raw.rate_limit ? normalizeRateLimit(ctx, raw, path) : undefined;
  const quarantine = raw.quarantine ? normalizeQuarantine(ctx, raw, index, sets, match) : undefined;
  if (!match || !ctx.typed(path)) return undefined;
  const tls = match.layer7?.tls;
  if (tls) tls.unseenMatches = (tls.unknown ?? "block") === raw.action;
  if (!match.process && !match.interface && !match.layer7 && !rateLimit && !quarantine)
    return plainRule(match, index, raw, globalMode, ctx.pos(path));
  // the match (made for this rule) completed field by field, in the order of the literal this
  // was: a copy and the optional parts' spreads cost temporary objects per rule of a big file
  const rule = match as Rule;
  rule.index = index;
  rule.name = raw.name;
  rule.action = raw.action as Action;
  rule.mode = raw.mode ?? globalMode;
  rule.ownMode = raw.mode !== undefined;
  rule.log = raw.log ?? false;
  if (rateLimit) rule.rateLimit = rateLimit;
  if (quarantine) rule.quarantine = quarantine;
  rule.pos = ctx.pos(path);
  return rule;
}

/**
 * A rule of layer3 and layer4 at most (most rules of a big file) as one literal, its fields in the
 * order normalizeRule adds them otherwise: properties added to an object made before go to an
 * array of their own, which the rule then keeps (and every collection while it is young copies).
 */
function plainRule(
  match: Match,
  index: number,
  raw: RuleDocument,
  globalMode: "detect" | "prevent",
  pos: SourcePos,
): Rule {
  const { direction, layer3, layer4 } = match;
  const name = raw.name;
  const action = raw.action as Action;
  const mode = raw.mode ?? globalMode;
  const ownMode = raw.mode !== undefined;
  const log = raw.log ?? false;
  if (layer3 && layer4)
    return { direction, layer3, layer4, index, name, action, mode, ownMode, log, pos };
  if (layer3) return { direction, layer3, index, name, action, mode, ownMode, log, pos };
  if (layer4) return { direction, layer4, index, name, action, mode, ownMode, log, pos };
  return { direction, index, name, action, mode, ownMode, log, pos };
}

/**
 * Which rule first used each name. A Map of a 100k-rule file's names took about a fifth of the
 * rules' checks (it grows, copying its table, and the collector copies it while it is young); this
 * table is made once at its size, of numbers only (a rule's name is read from the rule when its
 * hash matches), with a hash seeded per run, so no file's names can be made to collide on purpose.
 */
class FirstUse {
  private readonly rules: readonly RuleDocument[];
  /** Per slot: the index of the rule whose name hashed there first (-1: none), and that hash. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly seed = Math.floor(Math.random() * 2 ** 32) | 0;
  /** Names that are not strings (missing: the schema said so), compared as the Map compared them. */
  private others: Map<unknown, number> | undefined;

  constructor(rules: readonly RuleDocument[]) {
    this.rules = rules;
    let size = 16;
    while (size < rules.length * 2) size *= 2;
    this.slots = new Int32Array(2 * size).fill(-1);
    this.mask = size - 1;
  }

  /** The index of the rule that used `name` first; undefined (and `index` noted) if none did. */
  firstOrNote(name: unknown, index: number): number | undefined {
    if (typeof name !== "string") {
      this.others ??= new Map();
      const first = this.others.get(name);
      if (first === undefined) this.others.set(name, index);
      return first;
    }
    // FNV-1a over the UTF-16 units from the seed, then a final mix
    let h = this.seed;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    h ^= h >>> 12;
    const { slots, mask } = this;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const first = slots[2 * slot] ?? -1;
      if (first < 0) {
        slots[2 * slot] = index;
        slots[2 * slot + 1] = h;
        return undefined;
      }
      if (slots[2 * slot + 1] === h && this.rules[first]?.name === name) return first;
    }
  }
}

/** Whether a list names hosts, itself or through a set (matched by a process's lookups). */
function namesHosts(list: AddressList | undefined): boolean {
  return (list?.entries ?? []).some(
    (e) =>
      e.kind === "hostname" || (e.kind === "set" && e.entries.some((s) => s.kind === "hostname")),
  );
}

/**
 * Whether a rule blocks outgoing connections: one of its own `mode: detect` blocks nothing, any
 * other may block once `moat mode prevent` switches.
 */
const blocksOutgoing = (raw: RuleDocument, match: Match | undefined) =>
  raw.action === "block" && raw.mode !== "detect" && match?.direction !== "ingress";

/**
 * Why a rule blocks an outgoing connection at connect() always, before the kernel chooses its
 * local address: only the socket hooks judge a process or a host name.
 */
function judgedAtConnect(match: Match | undefined): string | undefined {
  if (match?.process) return "it names a process";
  if (namesHosts(match?.layer3?.remote)) return "it names hosts";
  return undefined;
}

/** Per document: its first rule judging outgoing connections by the local address or port. */
const firstLocalRules = new WeakMap<PolicyDocument, number>();

function firstLocalRule(doc: PolicyDocument): number {
  let first = firstLocalRules.get(doc);
  if (first === undefined) {
    first = (doc.rules ?? []).findIndex(
      (r) =>
        typeof r === "object" &&
        r !== null &&
        r.direction !== "ingress" &&
        (r.layer3?.local !== undefined || r.layer4?.source_port !== undefined),
    );
    if (first < 0) first = Infinity;
    firstLocalRules.set(doc, first);
  }
  return first;
}

/**
 * Whether the socket hooks judge rule `index`'s outgoing connections at connect(): with
 * attach.cgroup, unless that rule or one before it needs the local address or client port
 * (connect() leaves the verdict of those rules and later ones to the tc hook, which knows them).
 */
function socketHooksJudge(ctx: CheckContext, index: number): boolean {
  const doc = ctx.source.data as PolicyDocument;
  return doc.attach?.cgroup !== undefined && index < firstLocalRule(doc);
}

/**
 * `quarantine: { set, timeout }`: a dynamic set of moat's own (a CrowdSec bouncer's startup poll
 * replaces its entries), a rule whose matches are reported with their local address.
 */
function normalizeQuarantine(
  ctx: CheckContext,
  raw: RuleDocument,
  index: number,
  sets: ReadonlyMap<string, PolicySet>,
  match: Match | undefined,
): Rule["quarantine"] {
  const path = ["rules", index];
  const q = raw.quarantine;
  if (!q || !ctx.clean([...path, "quarantine"])) return undefined;
  const at = [...path, "quarantine"];
  let ok = true;
  const origin = sets.get(q.set)?.origin;
  if (origin?.kind !== "dynamic") {
    ctx.error([...at, "set"], `'${q.set}' is not a dynamic set (declare it as { dynamic: true })`);
    ok = false;
  } else if (origin.crowdsec) {
    ctx.error(
      [...at, "set"],
      `set '${q.set}' is filled by CrowdSec: each startup poll replaces its entries, a quarantine's among them; quarantine into a dynamic set of moat's own ({ dynamic: true })`,
    );
    ok = false;
  }
  // the local address put in the set is the event's: a connection refused at connect() has none
  const early = blocksOutgoing(raw, match) ? judgedAtConnect(match) : undefined;
  if (early) {
    ctx.error(
      at,
      `a quarantine puts the local address of the connection it matches in its set, and this rule blocks outgoing connections at connect(), before the kernel chooses that address (${early}): quarantine from a rule without 'process' and hostnames`,
    );
    ok = false;
  } else if (blocksOutgoing(raw, match) && socketHooksJudge(ctx, index))
    ctx.warn(
      at,
      "with attach.cgroup, a local process's outgoing connection this rule blocks is refused at connect(), before the kernel chooses its local address: the quarantine puts nothing in its set for it (a forwarded connection's local address is put there)",
    );
  if (raw.action === "allow" && raw.log !== true) {
    ctx.error(
      at,
      "an allow rule reports its matches only with 'log: true', which quarantine needs",
    );
    ok = false;
  }
  const seconds = parseDuration(q.timeout);
  if (!seconds.ok) {
    ctx.error([...at, "timeout"], seconds.error);
    return undefined;
  }
  const tooLong = timeoutTooLong(seconds.value);
  if (tooLong) {
    ctx.error([...at, "timeout"], tooLong);
    return undefined;
  }
  return ok ? { set: q.set, seconds: seconds.value } : undefined;
}

function normalizeRedirects(
  ctx: CheckContext,
  doc: PolicyDocument,
  sets: ReadonlyMap<string, PolicySet>,
): Redirect[] {
  const redirects: Redirect[] = [];
  const names = new Set<string>();
  (doc.redirect ?? []).forEach((raw, index) => {
    const path = ["redirect", index];
    if (typeof raw !== "object" || raw === null) return; // the schema said so
    if (ctx.clean([...path, "name"])) {
      if (names.has(raw.name))
        ctx.error([...path, "name"], `duplicate redirect name '${raw.name}'`);
      names.add(raw.name);
    }
    const match = ctx.clean([...path, "match"])
      ? normalizeMatch(ctx, raw.match, [...path, "match"], sets)
      : undefined;
    const to = ctx.clean([...path, "to"]) ? parseEndpoint(raw.to) : undefined;
    if (to === undefined && ctx.clean([...path, "to"]))
      ctx.error([...path, "to"], `'${raw.to}' is not IP:PORT (write [v6]:PORT for IPv6)`);
    if (!match || !to || !ctx.typed(path)) return;
    // moat's relay (proxy_protocol) is on loopback; any other target elsewhere cannot be asked
    if (raw.on_unavailable && !raw.proxy_protocol && !isLoopback(to))
      ctx.warn(
        [...path, "on_unavailable"],
        `${raw.to} is not a loopback address: moat cannot tell whether it listens, so on_unavailable never applies`,
      );
    redirects.push({
      ...match,
      name: raw.name,
      to,
      ...(raw.proxy_protocol ? { proxyProtocol: raw.proxy_protocol } : {}),
      ...(raw.on_unavailable ? { onUnavailable: raw.on_unavailable } : {}),
      pos: ctx.pos(path),
    });
  });
  return redirects;
}

const isLoopback = (to: Redirect["to"]): boolean =>
  to.family === 4 ? to.ip.startsWith("127.") : to.ip === "::1";

/** "127.0.0.1:8888" or "[::1]:8888". */
export function parseEndpoint(text: string): Redirect["to"] | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const ip = parseIp(m[1] ?? "");
  const port = Number(m[2]);
  if (!ip.ok || port > 65535) return undefined;
  return { ip: m[1] ?? "", family: ip.value.family, port };
}

/** `scrub`: the MSS clamp of each family and the IP header's normalisation. */
function scrubSettings(ctx: CheckContext, doc: PolicyDocument): Pick<PolicyModel, "scrub"> {
  if (!doc.scrub || !ctx.clean(["scrub"])) return {};
  const { mss, min_ttl, clear_df, random_ip_id } = doc.scrub;
  const [mss4, mss6] =
    mss === undefined ? [] : typeof mss === "number" ? [mss, mss] : [mss.ipv4, mss.ipv6];
  return {
    scrub: {
      ...(mss4 !== undefined ? { mss4 } : {}),
      ...(mss6 !== undefined ? { mss6 } : {}),
      ...(min_ttl !== undefined ? { minTtl: min_ttl } : {}),
      ...(clear_df ? { clearDf: true } : {}),
      ...(random_ip_id ? { randomIpId: true } : {}),
      pos: ctx.pos(["scrub"]),
    },
  };
}
