// Each rule -> what it matches in each dimension (remote, local, port, client port), which
// dimensions it leaves open (wildcards), and whether it can match at all.

import type { AddressEntry, AddressList, PolicyModel, Rule } from "../../config/model.ts";
import { Regions, SIZE4, addressSpaces, type Region } from "./address-regions.ts";
import { CompileError } from "./errors.ts";
import { isWhole, type Flat } from "./intervals.ts";
import {
  DIRECTION_SPACE,
  SPORT_SPACE,
  layer4Region,
  portRegion,
  ruleDirections,
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

export interface Analysis {
  rules: RuleDimensions[];
  regions: Regions;
}

/** Packet hooks judge only layer3 addresses and layer4: anything else cannot become a table. */
function assertCompilable(rule: Rule): void {
  // the line is read only for a message: reading it may read the file again (a lazy position)
  const where = () => `rule ${rule.name} (line ${rule.pos.line})`;
  for (const section of ["process", "interface", "layer7"] as const)
    if (rule[section])
      throw new CompileError(
        "EPOLICYUNSUPPORTED",
        `${where()}: '${section}' cannot be compiled to the packet classifier's tables`,
      );
  const hostname = (entries: AddressEntry[]): AddressEntry | undefined => {
    for (const e of entries) {
      if (e.kind === "hostname") return e;
      if (e.kind === "set") {
        const inner = hostname(e.entries);
        if (inner) return inner;
      }
    }
    return undefined;
  };
  for (const list of [rule.layer3?.remote, rule.layer3?.local]) {
    const found = list && hostname(list.entries);
    if (found)
      throw new CompileError(
        "EPOLICYUNSUPPORTED",
        `${where()}: hostname '${found.text}' cannot be compiled to the packet classifier's tables`,
      );
  }
}

const isAll = (region: Region, regions: Regions): boolean =>
  isWhole(region.v4, SIZE4) && isWhole(region.v6, regions.spaces.size6);

const isNone = (region: Region): boolean => region.v4.length === 0 && region.v6.length === 0;

export function analyze(model: PolicyModel): Analysis {
  model.rules.forEach(assertCompilable);
  const lists: AddressList[] = [];
  for (const rule of model.rules) {
    if (rule.layer3?.remote) lists.push(rule.layer3.remote);
    if (rule.layer3?.local) lists.push(rule.layer3.local);
  }
  const regions = new Regions(addressSpaces(lists));
  const rules = model.rules.map((rule): RuleDimensions => {
    const remote = regions.list(rule.layer3?.remote);
    const local = regions.list(rule.layer3?.local);
    const layer4 = layer4Region(rule.layer4);
    const sport = sportRegion(rule.layer4);
    const anyLayer4 = isWhole(layer4, DIRECTION_SPACE);
    const directions = ruleDirections(rule).reduce((bits, d) => bits | (1 << d), 0);
    return {
      remote: isAll(remote, regions) ? undefined : remote,
      local: isAll(local, regions) ? undefined : local,
      port: anyLayer4 && directions === 3 ? undefined : portRegion(rule, layer4),
      anyLayer4,
      sport: sport && isWhole(sport, SPORT_SPACE) ? undefined : sport,
      directions,
      empty: isNone(remote) || isNone(local) || layer4.length === 0 || sport?.length === 0,
    };
  });
  return { rules, regions };
}
