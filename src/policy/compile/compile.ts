// PolicyModel -> ClassifierImage (docs/classifier.md): classes per dimension, their
// combinations, the final rule tables and the LPM tries, each checked against its budget.

import { judgedBasics } from "../network-basics.ts";
import type { Action, PolicyModel, RateLimit, Rule, SynFlood } from "../../config/model.ts";
import { limitId, limitParams } from "../rate-limit.ts";
import { addressDimension, valueDimension, type Runs } from "./classes.ts";
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
import { ClassStore, classesPerRule, zobrist, type ClassSets } from "./set-index.ts";
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
  return {
    name: rule.name,
    action: rule.action,
    mode: rule.mode,
    log: rule.log,
    maxDurationSeconds: max && rule.action === "allow" ? max.seconds : 0,
    ...(rule.rateLimit && rule.action === "allow"
      ? { limit: imageLimit(rule.name, rule.rateLimit) }
      : {}),
    ...(rule.name === DOH_RULE ? { reason: "doh" as const } : {}),
    ...(rule.name === QUIC_RULE ? { reason: "quic" as const } : {}),
  };
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

/**
 * The first rule that can decide an egress connection by its local address or client port,
 * which connect() does not know yet: the socket hooks leave decisions from there on to the
 * packet hooks. rules.length + 2 (past the defaults) when there is none.
 */
function firstLocalRule(model: PolicyModel): number {
  const i = model.rules.findIndex(
    (r) => r.direction !== "ingress" && (r.layer3?.local || r.layer4?.sourcePorts),
  );
  return i < 0 ? model.rules.length + 2 : i;
}

/** The first rule judging ingress connections with `is`; rules.length + 2 (none) if none. */
export function firstIngressRule(model: PolicyModel, is: (r: Rule) => boolean): number {
  const i = model.rules.findIndex((r) => r.direction !== "egress" && is(r));
  return i < 0 ? model.rules.length + 2 : i;
}

export function compile(model: PolicyModel, options: CompileOptions = {}): ClassifierImage {
  const budgets = { ...DEFAULT_BUDGETS, ...options.budgets };
  let last = performance.now();
  const phase = (name: string): void => {
    const now = performance.now();
    options.onPhase?.(name, now - last);
    last = now;
  };
  const { rules: dims, regions } = analyze(model);
  phase("regions");
  const n = dims.length;
  const z = zobrist(n);
  const f = ruleFlags(dims);
  const { active } = f;
  const notRemoteOnly = active.map((a, i) => (a === 1 && f.remoteOnly[i] === 0 ? 1 : 0));
  const size6 = regions.spaces.size6;

  // base dimensions; a class's rule list stops at its first rule that matches every value of
  // every dimension not yet combined with it
  const remote = addressDimension(
    dims,
    (d) => d.remote,
    active,
    size6,
    new ClassStore(z, and(active, f.wildLocal, f.wildSport, f.wildPort)),
    z,
  );
  phase("remote classes");
  const local = addressDimension(
    dims,
    (d) => d.local,
    notRemoteOnly,
    size6,
    new ClassStore(z, and(active, f.wildRemote, f.wildSport, f.wildPort)),
    z,
  );
  phase("local classes");
  const port = valueDimension(
    dims,
    (d) => d.port,
    notRemoteOnly,
    PORT_SPACE,
    new ClassStore(z, and(active, f.wildRemote, f.wildLocal, f.wildSport)),
    z,
  );
  const sport = valueDimension(
    dims,
    (d) => d.sport,
    notRemoteOnly,
    SPORT_SPACE,
    new ClassStore(z, and(active, f.wildRemote, f.wildLocal, f.wildPort)),
    z,
  );
  phase("port classes");

  const tooBig = (side: "remote" | "local", family: 4 | 6, count: number): void => {
    if (count <= budgets.lpmEntries) return;
    const ranges = dims.map((d) => (d[side]?.[family === 4 ? "v4" : "v6"].length ?? 0) / 2);
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
    new ClassStore(z, and(active, f.wildRemote, f.wildPort)),
    z,
  );
  const wildX = and(active, f.wildLocal, f.wildSport);
  pairs("the port x (local, client port) table", port.sets, x.sets, budgets.portX);
  const y = combine(port.sets, x.sets, f.wildPort, wildX, new ClassStore(z, f.wildRemote), z);
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
  return {
    rules: [
      ...model.rules.map(imageRule),
      defaultRule(model, model.defaults.ingress),
      defaultRule(model, model.defaults.egress),
    ],
    ruleCount: n,
    defaultRule: { ingress: n, egress: n + 1 },
    firstLocalRule: firstLocalRule(model),
    firstIngressProcessRule: firstIngressRule(model, (r) => !!r.process),
    firstIngressSportRule: firstIngressRule(model, (r) => !!r.layer4?.sourcePorts),
    daemonFailure: model.failure.daemon,
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
    basicsJudged: judgedBasics(model),
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
