// The B4 policies (bench/connect.ts): 10k egress rules with random remotes and ports, either
// naming processes (a user, a cgroup and a name each) or L3/L4 only, plus the probe rule that
// allows the bench client's own connect()s. Built as models directly, as bench/compile.ts does
// (the loader's shadowing check is quadratic in the rule count).
import { parsePolicy, type PolicyModel } from "../src/config/index.ts";
import type { AddressList, Rule } from "../src/config/model.ts";
import { cidr, cidrEntry, random } from "./compile.ts";

const HEADER = "version: 1\nmode: prevent\ndefaults: { ingress: allow, egress: block }\n";

/** User names from /etc/passwd and bare uids, as process rules write them. */
const USERS: (string | number)[] = [
  "root",
  "daemon",
  "nobody",
  "www-data",
  "postgres",
  "proxy",
  "backup",
  ...Array.from({ length: 5 }, (_, i) => 2000 + i),
];
const NAMES = ["curl", "wget", "python3*", "ssh", "nginx", "node", "systemd-*", "apt*"];

export interface ProbeRule {
  /** The bench client's comm (its executable's file name). */
  name: string;
  /** The client's cgroup, relative to the cgroup2 mount ("/moat-b4-1/proc"). */
  cgroup: string;
  /** The port the timed connect()s go to (allowed); every other port is blocked by default. */
  port: number;
}

const pos = { file: "bench.yaml", line: 1, col: 1, path: "rules" };

/** The addresses the probe rule allows: 127.0.0.1 and the destinations the client turns through. */
export const PROBE_REMOTES = "127.0.0.0/16";

function addresses(text: string): AddressList {
  return { entries: [cidrEntry(text, pos)], pos };
}

/** A random remote, never in 127/8: no random rule judges the probe connections. */
function remote(rand: () => number): string {
  for (;;) {
    const text = cidr(rand);
    if (!text.startsWith("127.")) return text;
  }
}

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/**
 * `count` random egress rules, each naming a user, one of `cgroups` and a name when
 * `withProcess`, then the probe rule (allow tcp to PROBE_REMOTES:port, naming the client's name
 * and cgroup when `withProcess`). The default egress is block.
 */
export function connectModel(
  count: number,
  probe: ProbeRule,
  cgroups: string[],
  withProcess: boolean,
): PolicyModel {
  const model = parsePolicy(HEADER, "bench.yaml");
  const rand = random(count + 4);
  const names = [...NAMES, probe.name];
  for (let index = 0; index < count; index++) {
    const lo = 1 + Math.floor(rand() * 65000);
    const hi = rand() < 0.7 ? lo : lo + 1 + Math.floor(rand() * 15);
    const rule: Rule = {
      index,
      name: `r${index}`,
      action: rand() < 0.5 ? "allow" : "block",
      mode: "prevent",
      ownMode: false,
      log: false,
      pos: { ...pos, line: index + 5 },
      direction: "egress",
      layer3: { remote: addresses(remote(rand)), pos },
      layer4: {
        protocol: rand() < 0.5 ? 6 : 17,
        ports: [{ lo, hi, text: `${lo}-${hi}`, pos }],
        pos,
      },
    };
    if (withProcess) {
      rule.process = {
        user: [pick(rand, USERS)],
        cgroup: [pick(rand, cgroups)],
        name: [pick(rand, names)],
        pos,
      };
    }
    model.rules.push(rule);
  }
  const allow: Rule = {
    index: count,
    name: "probe",
    action: "allow",
    mode: "prevent",
    ownMode: false,
    log: false,
    pos: { ...pos, line: count + 5 },
    direction: "egress",
    layer3: { remote: addresses(PROBE_REMOTES), pos },
    layer4: {
      protocol: 6,
      ports: [{ lo: probe.port, hi: probe.port, text: String(probe.port), pos }],
      pos,
    },
  };
  if (withProcess) allow.process = { name: [probe.name], cgroup: [probe.cgroup], pos };
  model.rules.push(allow);
  return model;
}
