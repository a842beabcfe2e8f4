// PolicyModel -> ClassifierImage (docs/classifier.md): classes per dimension, their
// combinations, the final rule tables and the LPM tries, each checked against its budget.

import { judgedBasics } from "../network-basics.ts";
import type { Action, PolicyModel, RateLimit, Rule, SynFlood } from "../../config/model.ts";
import { limitId, limitParams } from "../rate-limit.ts";
import { addressDimension, SweepBuffers, valueDimension, type Runs } from "./classes.ts";
import { combine } from "./combine.ts";
import { analyze } from "./dimensions.ts";
import { sizeError, topRules } from "./errors.ts";
import {
  anyRemoteTable,
  remoteOnlyTable,
  remoteYTable,
  yDirections,
  type RuleFlags,
} from "./final.ts";
import { and, ruleFlags } from "./flags.ts";
import type { ClassifierImage, Dir4, ImageLimit, ImageRule, LpmEntry } from "./image.ts";
import { countLpm6, lpmEntries6 } from "./lpm.ts";
import { bestDir4, countDir4, dir4, type Dir4Layout } from "./dir4.ts";
import { PORT_SPACE, SPORT_SPACE } from "./ports.ts";
import { ClassStore, classesPerRule, KeyMap, zobrist, type ClassSets } from "./set-index.ts";
import { DOH_RULE, QUIC_RULE } from "../implicit-rules.ts";

/** Table budgets: a policy that needs more is refused (EPOLICYSIZE), never truncated. */
export interface Budgets {
  /** Entries of each address table (the IPv4 directories, the IPv6 LPM tries). */
  lpmEntries: number;
  /** Entries of the sparse (remote class, Y) table. */
  remoteY: number;
  /** nl * ns: the local x client-port table. */
  localSport: number;
  /** np * nx: the port x X table. */
  portX: number;
}

export const DEFAULT_BUDGETS: Budgets = {
  lpmEntries: 4_000_000,
  remoteY: 4_000_000,
  localSport: 16_000_000,
  portX: 16_000_000,
};

export interface CompileOptions {
  budgets?: Partial<Budgets>;
  /** The IPv4 directories' layout (tests of each); by default the smaller of blocks and wide. */
  dir4Layout?: Dir4Layout;
  /** Called after each phase with its duration (for bench/compile.ts). */
  onPhase?: (phase: string, ms: number) => void;
}

/**
 * Fields of the image its caller has computed already (compilePolicy's packet image: from the
 * model as written, and put into the image over compile's): taken as they are, not found again.
 */
export type KnownFields = Pick<
  ClassifierImage,
  "firstIngressProcessRule" | "firstIngressSportRule" | "basicsJudged"
>;

function imageLimit(name: string, l: RateLimit): ImageLimit {
  return {
    ...limitParams(l),
    id: limitId(name, l),
    prefix4: l.prefix4,
    prefix6: l.prefix6,
    perPort: l.perPort,
  };
}

function imageRule(rule: Rule): ImageRule {
  const max = rule.layer4?.maxDuration;
  const out: ImageRule = {
    name: rule.name,
    action: rule.action,
    mode: rule.mode,
    log: rule.log,
    // in either mode: past it the kernel cuts the connection (prevent) or reports it (detect)
    maxDurationSeconds: max && rule.action === "allow" ? max.seconds : 0,
  };
  if (rule.rateLimit && rule.action === "allow") out.limit = imageLimit(rule.name, rule.rateLimit);
  if (rule.name === DOH_RULE) out.reason = "doh";
  if (rule.name === QUIC_RULE) out.reason = "quic";
  return out;
}

/** `scrub` as the kernel reads it: the MSS clamps and the IP header's normalisation. */
function scrubImage(
  scrub: NonNullable<PolicyModel["scrub"]>,
): Pick<ClassifierImage, "mss" | "ipScrub"> {
  return {
    mss: { v4: scrub.mss4 ?? 0, v6: scrub.mss6 ?? 0 },
    ipScrub: {
      minTtl: scrub.minTtl ?? 0,
      clearDf: scrub.clearDf === true,
      randomIpId: scrub.randomIpId === true,
    },
  };
}

function defaultRule(model: PolicyModel, action: Action): ImageRule {
  return { name: "default", action, mode: model.mode, log: false, maxDurationSeconds: 0 };
}

/** Whether a prevent-mode block rule, or the default in prevent, could decide a connection of
 * `dir`: a frame moat cannot read is dropped there (docs/datapath.md). */
const dropsUnreadable = (model: PolicyModel, dir: "ingress" | "egress"): boolean =>
  model.mode === "prevent" ||
  model.rules.some(
    (r) =>
      r.action === "block" &&
      r.mode === "prevent" &&
      (r.direction === dir || r.direction === "any"),
  );

/**
 * Whether a rule can decide an egress connection by its local address or client port, which
 * connect() does not know yet: the socket hooks leave decisions from the first such rule on to
 * the packet hooks.
 */
const decidesByLocal = (r: Rule): boolean =>
  r.direction !== "ingress" && !!(r.layer3?.local || r.layer4?.sourcePorts);

/** The first rule judging ingress connections with `is`; rules.length + 2 (none) if none. */
export function firstIngressRule(model: PolicyModel, is: (r: Rule) => boolean): number {
  const i = model.rules.findIndex((r) => r.direction !== "egress" && is(r));
  return i < 0 ? model.rules.length + 2 : i;
}

/** firstIngressRule of process rules and of source-port rules, in one walk of the rules. */
export function firstIngressRules(
  model: PolicyModel,
): Pick<ClassifierImage, "firstIngressProcessRule" | "firstIngressSportRule"> {
  const none = model.rules.length + 2;
  let process = none;
  let sport = none;
  const { rules } = model;
  for (let i = 0; i < rules.length && (process === none || sport === none); i++) {
    const r = rules[i]!;
    if (r.direction === "egress") continue;
    if (process === none && r.process) process = i;
    if (sport === none && r.layer4?.sourcePorts) sport = i;
  }
  return { firstIngressProcessRule: process, firstIngressSportRule: sport };
}

export function compile(
  model: PolicyModel,
  options: CompileOptions = {},
  known?: KnownFields,
): ClassifierImage {
  const budgets = { ...DEFAULT_BUDGETS, ...options.budgets };
  let last = performance.now();
  const phase = (name: string): void => {
    const now = performance.now();
    options.onPhase?.(name, now - last);
    last = now;
  };
  const dims = analyze(model);
  const { regions } = dims;
  phase("regions");
  const n = model.rules.length;
  const z = zobrist(n);
  const f = ruleFlags(dims);
  const { active } = f;
  const notRemoteOnly = new Uint8Array(n);
  for (let i = 0; i < n; i++) notRemoteOnly[i] = active[i] === 1 && f.remoteOnly[i] === 0 ? 1 : 0;
  const size6 = regions.spaces.size6;

  // base dimensions; a class's rule list stops at its first rule that matches every value of
  // every dimension not yet combined with it. The stores are made one after the other: they
  // share one index's room, and the sweeps their buffers.
  const index = new KeyMap();
  const buffers = new SweepBuffers();
  const remote = addressDimension(
    dims.remote4,
    dims.remote6,
    active,
    size6,
    new ClassStore(z, and(active, f.wildLocal, f.wildSport, f.wildPort), index),
    z,
    buffers,
  );
  phase("remote classes");
  const local = addressDimension(
    dims.local4,
    dims.local6,
    notRemoteOnly,
    size6,
    new ClassStore(z, and(active, f.wildRemote, f.wildSport, f.wildPort), index),
    z,
    buffers,
  );
  phase("local classes");
  const port = valueDimension(
    dims.port,
    notRemoteOnly,
    PORT_SPACE,
    new ClassStore(z, and(active, f.wildRemote, f.wildLocal, f.wildSport), index),
    z,
    buffers,
  );
  const sport = valueDimension(
    dims.sport,
    notRemoteOnly,
    SPORT_SPACE,
    new ClassStore(z, and(active, f.wildRemote, f.wildLocal, f.wildPort), index),
    z,
    buffers,
  );
  phase("port classes");

  const tooBig = (side: "remote" | "local", family: 4 | 6, count: number): void => {
    if (count <= budgets.lpmEntries) return;
    const column = dims[`${side}${family}`];
    const ranges = Array.from({ length: n }, (_, rule) => column.size(rule) / 2);
    throw sizeError(
      `the ${side} IPv${family} address table`,
      count,
      budgets.lpmEntries,
      topRules(model.rules, ranges, ["address range", "address ranges"]),
    );
  };
  // /24 blocks when they fit the budget, else the segments alone (fewer entries, more reads)
  const table4 = (runs: Runs, side: "remote" | "local"): Dir4 => {
    const best = options.dir4Layout
      ? { mode: options.dir4Layout, count: countDir4(runs, options.dir4Layout) }
      : bestDir4(runs);
    if (best.count <= budgets.lpmEntries) return dir4(runs, best.count, best.mode);
    const segments = countDir4(runs, "segments");
    tooBig(side, 4, segments);
    return dir4(runs, segments, "segments");
  };
  const trie6 = (runs: Runs, side: "remote" | "local"): LpmEntry[] => {
    const points = regions.spaces.points6;
    const count = countLpm6(runs, points);
    tooBig(side, 6, count);
    return lpmEntries6(runs, points, count);
  };
  const remote4 = table4(remote.v4, "remote");
  const remote6 = trie6(remote.v6, "remote");
  const local4 = table4(local.v4, "local");
  const local6 = trie6(local.v6, "local");
  phase("lpm");

  const pairs = (what: string, a: ClassSets, b: ClassSets, budget: number): void => {
    const count = a.count * b.count;
    if (count <= budget) return;
    const perRule = classesPerRule(a, n);
    classesPerRule(b, n).forEach((c, i) => (perRule[i]! += c));
    throw sizeError(
      `${what} (${a.count} x ${b.count} classes)`,
      count,
      budget,
      topRules(model.rules, perRule, ["class", "classes"]),
    );
  };

  // X = local x client port; Y = port x X
  pairs("the local address x client port table", local.sets, sport.sets, budgets.localSport);
  const x = combine(
    local.sets,
    sport.sets,
    f.wildLocal,
    f.wildSport,
    new ClassStore(z, and(active, f.wildRemote, f.wildPort), index),
    z,
  );
  const wildX = and(active, f.wildLocal, f.wildSport);
  pairs("the port x (local, client port) table", port.sets, x.sets, budgets.portX);
  const y = combine(
    port.sets,
    x.sets,
    f.wildPort,
    wildX,
    new ClassStore(z, f.wildRemote, index),
    z,
  );
  phase("combine");

  const flags: RuleFlags = {
    wildRemote: f.wildRemote,
    remoteOnly: f.remoteOnly,
    directions: f.directions,
    firstEverywhere: f.catchAll,
  };
  const remoteOnly = remoteOnlyTable(remote.sets, flags);
  const anyRemote = anyRemoteTable(y.sets, flags);
  const remoteY = remoteYTable(
    remote.sets,
    y.sets,
    flags,
    anyRemote,
    remoteOnly,
    yDirections(port.table, port.sets.count, x.sets.count, y.table, y.sets.count),
    budgets.remoteY,
    (count, perRule, partial) => {
      throw sizeError(
        "the remote x Y hash",
        count,
        budgets.remoteY,
        topRules(model.rules, perRule, ["entry", "entries"]),
        partial,
      );
    },
  );

  phase("final");
  const firstIngress = known ?? firstIngressRules(model);
  // the image's rules and the first local rule (rules.length + 2, past the defaults, when there
  // is none) in one walk of the rules
  const rules: ImageRule[] = [];
  let firstLocal = n + 2;
  for (let i = 0; i < n; i++) {
    const rule = model.rules[i]!;
    rules.push(imageRule(rule));
    if (firstLocal === n + 2 && decidesByLocal(rule)) firstLocal = i;
  }
  rules.push(defaultRule(model, model.defaults.ingress), defaultRule(model, model.defaults.egress));
  return {
    rules,
    ruleCount: n,
    defaultRule: { ingress: n, egress: n + 1 },
    firstLocalRule: firstLocal,
    firstIngressProcessRule: firstIngress.firstIngressProcessRule,
    firstIngressSportRule: firstIngress.firstIngressSportRule,
    daemonFailure: model.failure.daemon,
    dropUnreadable: {
      ingress: dropsUnreadable(model, "ingress"),
      egress: dropsUnreadable(model, "egress"),
    },
    ...(model.scrub ? scrubImage(model.scrub) : {}),
    // no signature: nothing is copied (a policy whose every signature was refused costs nothing)
    ...(model.ids && model.ids.signatures.length > 0
      ? { ids: { bytes: model.ids.bytes, sample: model.ids.sample } }
      : {}),
    ...(model.synFlood ? { synFlood: synFloodImage(model.synFlood) } : {}),
    ...(model.icmpFlood
      ? {
          icmpFlood: {
            maxSize: model.icmpFlood.maxSize,
            prevent: model.icmpFlood.mode === "prevent",
          },
        }
      : {}),
    ...(model.udpAmplification
      ? {
          udpAmplification: {
            ports: model.udpAmplification.ports,
            limit: imageLimit("flood.udp_amplification", model.udpAmplification.limit),
            prevent: model.udpAmplification.mode === "prevent",
          },
        }
      : {}),
    basicsJudged: known ? known.basicsJudged : judgedBasics(model),
    remote4,
    remote6,
    local4,
    local6,
    nr: remote.sets.count,
    nl: local.sets.count,
    ns: sport.sets.count,
    np: port.sets.count,
    nx: x.sets.count,
    ny: y.sets.count,
    portClass: port.table,
    sportClass: sport.table,
    lx: x.table,
    px: y.table,
    remoteY,
    anyRemote,
    remoteOnly,
  };
}

/** flood.syn as the kernel's bucket holds it: one SYN is 1 s / rate. */
function synFloodImage(f: SynFlood): NonNullable<ClassifierImage["synFlood"]> {
  return {
    ports: f.ports,
    periodNs: BigInt(Math.ceil(1e9 / f.rate)),
    burst: f.burst,
    holdNs: BigInt(f.holdSeconds) * 1_000_000_000n,
    prevent: f.mode === "prevent",
  };
}
