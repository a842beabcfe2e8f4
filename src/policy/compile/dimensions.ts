// Each rule -> what it matches in each dimension (remote, local, port, client port), which
// dimensions it leaves open (wildcards), and whether it can match at all.

import type { AddressEntry, PolicyModel, Rule } from "../../config/model.ts";
import { AddressSpaceBuilder, onlyV4, Regions, SIZE4, type Region } from "./address-regions.ts";
import { CompileError } from "./errors.ts";
import { EMPTY, isWhole, type Flat } from "./intervals.ts";
import {
  DIRECTION_SPACE,
  SPORT_SPACE,
  layer4Region,
  onePortStart,
  portRegion,
  ruleDirectionBits,
  sportRegion,
} from "./ports.ts";

export interface RuleDimensions {
  /** undefined = any address (a wildcard). */
  remote: Region | undefined;
  local: Region | undefined;
  /** Port-dimension values; undefined = any direction, any protocol and port. */
  port: Flat | undefined;
  /** The rule leaves protocol and ports open (it may still name one direction). */
  anyLayer4: boolean;
  /** Client-port values; undefined = any. */
  sport: Flat | undefined;
  /** Bit 0 ingress, bit 1 egress. */
  directions: number;
  /** Some dimension is empty: the rule matches nothing. */
  empty: boolean;
}

/** Sets of up to this many numbers are copied into a column; longer ones are kept as they are. */
const SMALL = 16;

/**
 * One dimension's sets, rule by rule (pushed in rule order): a few numbers a rule in one array,
 * rather than an object or two a rule for the compile to keep and walk.
 */
export class Column {
  /** 1: the rule leaves the dimension open (a wildcard: no set). */
  readonly wild: Uint8Array;
  /**
   * Rule r's numbers are data[off[r]..off[r + 1]), unless `big` has its set (both are made with
   * the first numbers: a column of wildcards and big sets has none).
   */
  off: Uint32Array | null = null;
  data = new Float64Array(0);
  /** The sets of more than SMALL numbers, by rule (often a named set's, shared by its rules). */
  readonly big = new Map<number, Flat>();
  private readonly rules: number;
  private length = 0;
  private next = 0;

  constructor(rules: number) {
    this.rules = rules;
    this.wild = new Uint8Array(rules);
  }

  /** The next rule's set; undefined = a wildcard. */
  push(set: Flat | undefined): void {
    const rule = this.next++;
    if (!set) this.wild[rule] = 1;
    else if (set.length > SMALL) this.big.set(rule, set);
    else if (set.length > 0) {
      this.off ??= new Uint32Array(this.rules + 1);
      if (this.length + set.length > this.data.length) {
        // room for two numbers a rule still to come (one interval), or twice what it had
        const room = Math.max(2 * this.data.length, 2 * (this.rules - rule) + SMALL);
        const bigger = new Float64Array(this.length + room);
        bigger.set(this.data.subarray(0, this.length));
        this.data = bigger;
      }
      for (let i = 0; i < set.length; i++) this.data[this.length++] = set[i]!;
    }
    if (this.off) this.off[rule + 1] = this.length;
  }

  /** The next rule's set as the one interval [start, end): push() without a set to copy. */
  pushInterval(start: number, end: number): void {
    const rule = this.next++;
    this.off ??= new Uint32Array(this.rules + 1);
    if (this.length + 2 > this.data.length) {
      const room = Math.max(2 * this.data.length, 2 * (this.rules - rule) + SMALL);
      const bigger = new Float64Array(this.length + room);
      bigger.set(this.data.subarray(0, this.length));
      this.data = bigger;
    }
    this.data[this.length++] = start;
    this.data[this.length++] = end;
    this.off[rule + 1] = this.length;
  }

  /** Rule r's set (a copy, or the one kept), or undefined. */
  get(rule: number): Flat | undefined {
    if (this.wild[rule] === 1) return undefined;
    const kept = this.big.get(rule);
    if (kept) return kept;
    return this.off ? this.data.slice(this.off[rule], this.off[rule + 1]) : new Float64Array(0);
  }

  /** How many numbers rule r's set has (0 for a wildcard). */
  size(rule: number): number {
    if (this.big.size > 0) {
      const kept = this.big.get(rule);
      if (kept) return kept.length;
    }
    return this.off ? this.off[rule + 1]! - this.off[rule]! : 0;
  }
}

export interface Analysis {
  /** Each rule's dimensions as objects (made when first read: the compile reads the columns). */
  readonly rules: RuleDimensions[];
  regions: Regions;
  /** The columns, rule by rule; remote4 and remote6 (local4, local6) are wildcards together. */
  remote4: Column;
  remote6: Column;
  local4: Column;
  local6: Column;
  port: Column;
  sport: Column;
  /** 1: the rule leaves protocol and ports open (RuleDimensions.anyLayer4). */
  anyLayer4: Uint8Array;
  /** Bit 0 ingress, bit 1 egress. */
  directions: Uint8Array;
  /** 1: some dimension is empty, the rule matches nothing. */
  empty: Uint8Array;
}

const UNCOMPILABLE = ["process", "interface", "layer7"] as const;

/**
 * Packet hooks judge only layer3 addresses and layer4: anything else cannot become a table.
 * `remoteHost`, `localHost`: the first hostname entries of its remote and local lists.
 */
function assertCompilable(
  rule: Rule,
  remoteHost: AddressEntry | undefined,
  localHost: AddressEntry | undefined,
): void {
  if (!rule.process && !rule.interface && !rule.layer7 && !remoteHost && !localHost) return;
  // the line is read only for a message: reading it may read the file again (a lazy position)
  const where = () => `rule ${rule.name} (line ${rule.pos.line})`;
  for (const section of UNCOMPILABLE)
    if (rule[section])
      throw new CompileError(
        "EPOLICYUNSUPPORTED",
        `${where()}: '${section}' cannot be compiled to the packet classifier's tables`,
      );
  const found = remoteHost ?? localHost!;
  throw new CompileError(
    "EPOLICYUNSUPPORTED",
    `${where()}: hostname '${found.text}' cannot be compiled to the packet classifier's tables`,
  );
}

const isAll = (region: Region, regions: Regions): boolean =>
  isWhole(region.v4, SIZE4) && isWhole(region.v6, regions.spaces.size6);

const isNone = (region: Region): boolean => region.v4.length === 0 && region.v6.length === 0;

export function analyze(model: PolicyModel): Analysis {
  const all = model.rules;
  const n = all.length;
  const directions = new Uint8Array(n);
  // the usual rule of a big file: one direction, one IPv4 range (remote), tcp or udp and one
  // port range, nothing more. Its intervals [bounds[4i], bounds[4i + 1]) (remote) and
  // [bounds[4i + 2], bounds[4i + 3]) (port) are noted in the first walk of the rules, and go into
  // the columns as numbers: no set (typed array) is made for them, nor the rule read again.
  const usual = new Uint8Array(n);
  const bounds = new Float64Array(4 * n);
  // one walk of the address lists: the IPv6 rank space, and the hostnames that cannot compile
  const spaces = new AddressSpaceBuilder();
  for (let i = 0; i < n; i++) {
    const rule = all[i]!;
    const remote = rule.layer3?.remote;
    const local = rule.layer3?.local;
    const remoteHost = remote ? spaces.add(remote) : undefined;
    const localHost = local ? spaces.add(local) : undefined;
    assertCompilable(rule, remoteHost, localHost);
    directions[i] = ruleDirectionBits(rule);
    const remoteV4 = local ? undefined : onlyV4(remote);
    const start = remoteV4 ? onePortStart(rule) : -1;
    if (start >= 0) {
      const only = rule.layer4!.ports![0]!;
      usual[i] = 1;
      bounds[4 * i] = Number(remoteV4!.start);
      bounds[4 * i + 1] = Number(remoteV4!.end) + 1;
      bounds[4 * i + 2] = start;
      bounds[4 * i + 3] = start + only.hi - only.lo + 1;
    }
  }
  const regions = new Regions(spaces.finish());
  const remote4 = new Column(n);
  const remote6 = new Column(n);
  const local4 = new Column(n);
  const local6 = new Column(n);
  const port = new Column(n);
  const sport = new Column(n);
  const anyLayer4 = new Uint8Array(n);
  const empty = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (usual[i] === 1) {
      // what the general way gives such a rule: its range in no IPv6 rank, any local address
      // and client port, not every protocol, not empty
      remote4.pushInterval(bounds[4 * i]!, bounds[4 * i + 1]!);
      remote6.push(EMPTY);
      local4.push(undefined);
      local6.push(undefined);
      port.pushInterval(bounds[4 * i + 2]!, bounds[4 * i + 3]!);
      sport.push(undefined);
      continue;
    }
    const rule = all[i]!;
    const bits = directions[i]!;
    const remote = regions.list(rule.layer3?.remote);
    const local = regions.list(rule.layer3?.local);
    const layer4 = layer4Region(rule.layer4);
    const sportSet = sportRegion(rule.layer4);
    const any = isWhole(layer4, DIRECTION_SPACE);
    const remoteAll = isAll(remote, regions);
    remote4.push(remoteAll ? undefined : remote.v4);
    remote6.push(remoteAll ? undefined : remote.v6);
    const localAll = isAll(local, regions);
    local4.push(localAll ? undefined : local.v4);
    local6.push(localAll ? undefined : local.v6);
    port.push(any && bits === 3 ? undefined : portRegion(rule, layer4));
    sport.push(sportSet && isWhole(sportSet, SPORT_SPACE) ? undefined : sportSet);
    anyLayer4[i] = any ? 1 : 0;
    empty[i] =
      isNone(remote) || isNone(local) || layer4.length === 0 || sportSet?.length === 0 ? 1 : 0;
  }
  let rules: RuleDimensions[] | undefined;
  return {
    get rules(): RuleDimensions[] {
      rules ??= Array.from({ length: n }, (_, i): RuleDimensions => {
        const region = (v4: Column, v6: Column): Region | undefined =>
          v4.wild[i] === 1 ? undefined : { v4: v4.get(i)!, v6: v6.get(i)! };
        return {
          remote: region(remote4, remote6),
          local: region(local4, local6),
          port: port.get(i),
          anyLayer4: anyLayer4[i] === 1,
          sport: sport.get(i),
          directions: directions[i]!,
          empty: empty[i] === 1,
        };
      });
      return rules;
    },
    regions,
    remote4,
    remote6,
    local4,
    local6,
    port,
    sport,
    anyLayer4,
    directions,
    empty,
  };
}
