// The link type of an interface (ip -j link): moat's programs parse frames that start with an
// Ethernet header, which L3 devices (wireguard, tun, ipip: link type "none") do not have.
import { execFileSync } from "node:child_process";

/** Link types whose frames start with an Ethernet header at XDP and TC. */
const ETHERNET = new Set(["ether", "loopback"]);

export function linkType(name: string): string {
  try {
    const out = JSON.parse(
      execFileSync("ip", ["-j", "link", "show", "dev", name], { encoding: "utf8" }),
    ) as { link_type?: string }[];
    return out[0]?.link_type ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Why moat cannot judge this interface's frames, or null when it can. */
export function unsupportedLink(name: string): string | null {
  const type = linkType(name);
  if (ETHERNET.has(type) || type === "unknown") return null;
  return `link type ${type}: its frames have no Ethernet header, which moat's programs parse`;
}
