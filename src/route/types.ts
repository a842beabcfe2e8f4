// The route mirror's data: what the connect4/6 hook consults before the SYN leaves.

/** One prefix of the kernel's routing decision (main + local tables merged, longest prefix wins). */
export interface RouteEntry {
  /** network order, 4 bytes (v4) or 16 bytes (v6), host bits zero */
  addr: Uint8Array;
  prefixlen: number;
  /** the interface the route leaves through; 0 for reject routes */
  ifindex: number;
  /** that interface is a tunnel (wireguard, vxlan, gre, ipip, tun/tap...) */
  tunnel: boolean;
  /** blackhole, unreachable, prohibit or throw: connect() cannot leave by any interface */
  reject: boolean;
  /** "" for reject routes */
  ifname: string;
}

/** What the kernel map is built from. */
export interface RouteImage {
  v4: RouteEntry[];
  v6: RouteEntry[];
}

/** An interface as the mirror sees it (ip -j -d link show). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  /** linkinfo.info_kind ("vxlan", "tun", "wireguard"...), "" for physical or unknown */
  kind: string;
  tunnel: boolean;
  /**
   * The bridge, bond or team this link is a port of: the host's IP layer sees the packets that
   * come in by the port as coming in by it, so interface rules judge the port as its master.
   */
  master?: string;
  /**
   * A macvlan's lower device and its own MAC address: frames for the macvlan pass the lower
   * device's hooks first, and are judged as the macvlan's by their MAC address.
   */
  lower?: string;
  mac?: string;
}

/** Something the image approximates; shown to users, never fatal. */
export interface RouteNote {
  family: 4 | 6;
  /** the route's prefix as text ("10.0.0.0/8", "default"), or "" for notes about the namespace */
  prefix: string;
  reason: string;
}

/** One consistent read of the namespace's links and routes. */
export interface RouteSnapshot {
  /** bumps each time the image changes; 0 before the first read */
  generation: number;
  image: RouteImage;
  links: LinkInfo[];
  notes: RouteNote[];
}
