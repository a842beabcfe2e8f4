// Which hook judges an interface's incoming packets when attach.interfaces leaves it to moat
// (`ingress: auto`). Native XDP costs more than it saves where the kernel has to give the packets
// up to XDP from its skb path: on a veth an XDP program turns off the peer's TSO/GSO (bulk TCP
// fell to 0.17 of its rate, docs/performance.md B14), and virtio_net refuses XDP while the host
// offers GRO_HW. Those two get tc ingress; the rest XDP, the cheapest place to drop a flood.
import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import type { InterfaceHooks } from "../config/model.ts";

/** Which program judges an interface's incoming packets. */
export type IngressHook = "xdp" | "tc";

/** What decides the choice: the rtnetlink link kind ("veth", "bridge") and the device's driver. */
export interface LinkFacts {
  kind: string | null;
  driver: string | null;
}

/** The hook chosen for one interface, and why, as `moat status` shows it. */
export interface IngressChoice {
  ingress: IngressHook;
  why: string;
}

/**
 * The link's kind and driver as the kernel reports them in this process's network namespace
 * (`ip -d link`: IFLA_LINKINFO's kind, the parent bus). sysfs gives the driver's name where it
 * shows this namespace (the same ifindex under the same name).
 */
export function linkFacts(name: string, ifindex: number): LinkFacts {
  let kind: string | null = null;
  let bus: string | null = null;
  try {
    const out = JSON.parse(
      execFileSync("ip", ["-j", "-d", "link", "show", "dev", name], { encoding: "utf8" }),
    ) as { linkinfo?: { info_kind?: string }; parentbus?: string }[];
    kind = out[0]?.linkinfo?.info_kind ?? null;
    bus = out[0]?.parentbus ?? null;
  } catch {
    // gone since it was listed, or no `ip`: sysfs may still say
  }
  let driver: string | null = null;
  try {
    if (Number(readFileSync(`/sys/class/net/${name}/ifindex`, "utf8")) === ifindex)
      driver = basename(readlinkSync(`/sys/class/net/${name}/device/driver`));
  } catch {
    // a virtual device (no device/driver) or sysfs of another namespace
  }
  // a net device on the virtio bus is virtio_net's
  if (!driver && bus === "virtio") driver = "virtio_net";
  return { kind, driver };
}

/** The auto choice for a link with these facts. */
export function autoIngress(facts: LinkFacts): IngressChoice {
  if (facts.kind === "veth") return { ingress: "tc", why: "auto: veth -> tc" };
  if (facts.driver === "virtio_net") return { ingress: "tc", why: "auto: virtio_net -> tc" };
  const what = facts.kind ?? facts.driver ?? "other";
  return { ingress: "xdp", why: `auto: ${what} -> xdp` };
}

/** The hook an entry gives an interface: its own, or the auto choice by the link's facts. */
export function chooseIngress(
  entry: InterfaceHooks["ingress"],
  facts: () => LinkFacts,
): IngressChoice {
  if (entry !== "auto") return { ingress: entry, why: `ingress: ${entry}` };
  return autoIngress(facts());
}

const known = new Map<string, LinkFacts>();

/** linkFacts, asked once per interface (by ifindex and name) while it is among `present`. */
export function cachedLinkFacts(
  nic: { name: string; ifindex: number },
  present: { name: string; ifindex: number }[],
): LinkFacts {
  const key = `${nic.ifindex} ${nic.name}`;
  let facts = known.get(key);
  if (!facts) {
    const live = new Set(present.map((n) => `${n.ifindex} ${n.name}`));
    for (const k of known.keys()) if (!live.has(k)) known.delete(k);
    facts = linkFacts(nic.name, nic.ifindex);
    known.set(key, facts);
  }
  return facts;
}
