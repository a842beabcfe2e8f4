// Network interfaces of this process's network namespace, matched against `attach.interfaces`.
// /proc/self/net follows the namespace the process is in (sysfs may show another one).
import { readFileSync } from "node:fs";
import { native } from "./addon.ts";
import type { InterfaceHooks } from "../config/model.ts";
import {
  cachedLinkFacts,
  chooseIngress,
  type IngressHook,
  type LinkFacts,
} from "./ingress-choice.ts";

export interface NetInterface {
  name: string;
  ifindex: number;
}

export function listInterfaces(): NetInterface[] {
  const lines = readFileSync("/proc/self/net/dev", "utf8").split("\n").slice(2);
  const out: NetInterface[] = [];
  for (const name of lines.map((l) => l.split(":")[0]?.trim() ?? "").filter(Boolean)) {
    try {
      out.push({ name, ifindex: native().ifindex(name) });
    } catch {
      // deleted since the list was read
    }
  }
  return out.sort((a, b) => a.ifindex - b.ifindex);
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

const matches = (pattern: string, name: string): boolean =>
  pattern === "*" ? name !== "lo" : globToRegExp(pattern).test(name);

/** "*" means every interface but loopback; other entries are names or globs. */
export function selectInterfaces(patterns: string[], all = listInterfaces()): NetInterface[] {
  return all.filter((nic) => patterns.some((p) => matches(p, nic.name)));
}

/** An interface to attach to, with the hook its incoming packets get and why that one. */
export interface PlannedInterface extends NetInterface {
  ingress: IngressHook;
  /** "ingress: tc" when the entry says, "auto: veth -> tc" when moat chose */
  why: string;
}

/**
 * The interfaces attach.interfaces selects; the first entry that matches one decides its hook
 * (`auto`: by the link's kind and driver, ingress-choice.ts).
 */
export function planInterfaces(
  entries: InterfaceHooks[],
  all = listInterfaces(),
  facts: (nic: NetInterface) => LinkFacts = (nic) => cachedLinkFacts(nic, all),
): PlannedInterface[] {
  const planned: PlannedInterface[] = [];
  for (const nic of all) {
    const entry = entries.find((e) => matches(e.name, nic.name));
    if (entry) planned.push({ ...nic, ...chooseIngress(entry.ingress, () => facts(nic)) });
  }
  return planned;
}
