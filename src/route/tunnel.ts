// Which links are tunnels: a connection leaving by one is encapsulated (or handed to a user-space
// VPN) before it reaches the wire, which is what `interface.tunnel` in a rule asks about.

/** rtnetlink link kinds (IFLA_INFO_KIND) that carry traffic inside another protocol. */
const TUNNEL_KINDS = new Set([
  "wireguard",
  "vxlan",
  "geneve",
  "bareudp",
  "gre",
  "gretap",
  "erspan",
  "ip6gre",
  "ip6gretap",
  "ip6erspan",
  "ipip",
  "sit",
  "ip6tnl",
  "vti",
  "vti6",
  "xfrm",
  "gtp",
  "amt",
  // tun and tap: the kernel hands packets to a user-space program (OpenVPN, tailscaled, slirp...)
  "tun",
]);

/**
 * ARPHRD names (ip's link_type) of L3 tunnel devices; they classify a link whose kind the kernel
 * does not report. "none" (ARPHRD_NONE) is also what wireguard and tun use, but ppp-like links
 * have it too, so it counts only with POINTOPOINT and NOARP (see isTunnelLink).
 */
const TUNNEL_LINK_TYPES = new Set(["ipip", "tunnel6", "sit", "gre", "ip6gre"]);

export interface LinkFacts {
  kind: string;
  linkType: string;
  flags: readonly string[];
}

export function isTunnelLink(link: LinkFacts): boolean {
  if (TUNNEL_KINDS.has(link.kind)) return true;
  if (link.kind !== "") return false; // a known non-tunnel kind: veth, bridge, macvlan, vlan...
  if (TUNNEL_LINK_TYPES.has(link.linkType)) return true;
  return (
    link.linkType === "none" && link.flags.includes("POINTOPOINT") && link.flags.includes("NOARP")
  );
}
