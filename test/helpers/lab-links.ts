// Links the interface tests add to the namespace lab: a second veth between moat's host (b) and
// the peer (a), a macvlan on b's veth, and a container namespace behind b that b forwards for.
// The caller names them per run.
import { execFileSync } from "node:child_process";
import type { Lab } from "./netns.ts";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });

/** The host's second way to a: `name` in b (10.77.0.1/24), its peer `${name}p` in a (10.77.0.5/24). */
export function addSecondVeth(l: Lab, name: string): void {
  ip("link", "add", name, "netns", l.b, "type", "veth", "peer", "name", `${name}p`, "netns", l.a);
  ip("-n", l.b, "addr", "add", "10.77.0.1/24", "dev", name);
  ip("-n", l.a, "addr", "add", "10.77.0.5/24", "dev", `${name}p`);
  ip("-n", l.b, "link", "set", name, "up");
  ip("-n", l.a, "link", "set", `${name}p`, "up");
}

/**
 * A macvlan `name` (bridge mode) on b's veth, 10.89.0.1/24, and a's veth in 10.89.0.5/24 beside
 * it: its frames pass the veth's hooks. b answers ARP only on the link an address is on
 * (arp_ignore=1), so a reaches 10.89.0.1 by the macvlan.
 */
export function addMacvlan(l: Lab, name: string): void {
  ip("-n", l.b, "link", "add", name, "link", l.ifB, "type", "macvlan", "mode", "bridge");
  ip("netns", "exec", l.b, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1");
  ip("-n", l.b, "addr", "add", "10.89.0.1/24", "dev", name);
  ip("-n", l.a, "addr", "add", "10.89.0.5/24", "dev", l.ifA);
  ip("-n", l.b, "link", "set", name, "up");
}

/**
 * A container namespace `ns` behind b: its eth0 (10.78.0.2/24, given ifindex `index` if any)
 * routed by `hostDev` in b (10.78.0.1/24), and b forwarding. a needs a route back to 10.78.0.0/24.
 */
export function addContainerBehindB(l: Lab, ns: string, hostDev: string, index?: number): void {
  ip("netns", "add", ns);
  const numbered = index === undefined ? [] : ["index", String(index)];
  ip(
    "link",
    "add",
    hostDev,
    "netns",
    l.b,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    ns,
    ...numbered,
  );
  ip("-n", l.b, "addr", "add", "10.78.0.1/24", "dev", hostDev);
  ip("-n", ns, "addr", "add", "10.78.0.2/24", "dev", "eth0");
  ip("-n", l.b, "link", "set", hostDev, "up");
  ip("-n", ns, "link", "set", "eth0", "up");
  ip("-n", ns, "link", "set", "lo", "up");
  ip("-n", ns, "route", "add", "default", "via", "10.78.0.1");
  ip("netns", "exec", l.b, "sysctl", "-qw", "net.ipv4.ip_forward=1");
}

/** Removes namespace `ns`, if it was made. */
export function deleteNamespace(ns: string): void {
  try {
    ip("netns", "del", ns);
  } catch {
    // never made
  }
}
