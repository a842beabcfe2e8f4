// Network interfaces of this process's network namespace, matched against `attach.interfaces`.
// /proc/self/net follows the namespace the process is in (sysfs may show another one).
import { readFileSync } from "node:fs";
import { native } from "./addon.ts";

export interface NetInterface {
  name: string;
  ifindex: number;
}

export function listInterfaces(): NetInterface[] {
  const lines = readFileSync("/proc/self/net/dev", "utf8").split("\n").slice(2);
  return lines
    .map((l) => l.split(":")[0]?.trim() ?? "")
    .filter(Boolean)
    .map((name) => ({ name, ifindex: native().ifindex(name) }))
    .sort((a, b) => a.ifindex - b.ifindex);
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** "*" means every interface but loopback; other entries are names or globs. */
export function selectInterfaces(patterns: string[], all = listInterfaces()): NetInterface[] {
  return all.filter((nic) =>
    patterns.some((p) => (p === "*" ? nic.name !== "lo" : globToRegExp(p).test(nic.name))),
  );
}
