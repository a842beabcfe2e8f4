// iproute2's view of a namespace -> the image the kernel map is built from. Pure, so tests can
// feed it dumps. The image is one longest-prefix table: the local table is folded into main the
// way the kernel's lookup order makes it win (see mergeLocal).
import type { Family } from "../config/ip.ts";
import type { RawLink, RawRoute, RawRule } from "./ip-json.ts";
import { parseRouteDst, prefixContains, prefixText, type Prefix } from "./prefix.ts";
import { isTunnelLink } from "./tunnel.ts";
import type { LinkInfo, RouteEntry, RouteImage, RouteNote } from "./types.ts";

/** Everything read from one namespace at one time. */
export interface NamespaceDump {
  links: RawLink[];
  main4: RawRoute[];
  main6: RawRoute[];
  local4: RawRoute[];
  local6: RawRoute[];
  rules4: RawRule[];
  rules6: RawRule[];
}

export interface BuiltImage {
  image: RouteImage;
  links: LinkInfo[];
  notes: RouteNote[];
}

const REJECT_TYPES = new Set(["blackhole", "unreachable", "prohibit", "throw"]);
/** Delivered to this host: the kernel sends these through loopback whatever dev the table says. */
const LOCAL_TYPES = new Set(["local", "anycast"]);
/** Sent out of the route's own device. */
const DEVICE_TYPES = new Set(["unicast", "broadcast", "multicast"]);

type Target = Pick<RouteEntry, "ifindex" | "tunnel" | "reject" | "ifname">;
interface Candidate extends Prefix {
  target: Target;
  metric: number;
}

const REJECT: Target = { ifindex: 0, tunnel: false, reject: true, ifname: "" };

function linkTarget(link: LinkInfo): Target {
  return { ifindex: link.ifindex, tunnel: link.tunnel, reject: false, ifname: link.ifname };
}

function resolve(
  route: RawRoute,
  family: Family,
  byName: Map<string, LinkInfo>,
  loopback: LinkInfo | undefined,
  note: (reason: string) => void,
): Target | null {
  if (REJECT_TYPES.has(route.type)) return REJECT;
  if (LOCAL_TYPES.has(route.type)) {
    if (loopback) return linkTarget(loopback);
    note("local route but no loopback interface");
    return null;
  }
  if (!DEVICE_TYPES.has(route.type)) {
    note(`route type ${route.type} is not mirrored`);
    return null;
  }
  let dev = route.dev;
  if (!dev && route.nexthops.length > 0) {
    // multipath: the kernel hashes each flow onto one nexthop; the image can hold only one
    const alive = route.nexthops.filter((n) => n.dev && !n.flags.includes("dead"));
    dev = alive[0]?.dev ?? "";
    if (route.nexthops.length > 1)
      note(`multipath route: the image uses the first nexthop (${dev || "none alive"})`);
  }
  if (!dev) {
    note(family === 6 ? "route without a device" : "route without a device (nexthop object?)");
    return null;
  }
  const link = byName.get(dev);
  if (!link) {
    note(`device ${dev} not in the link list (it changed while being read)`);
    return null;
  }
  return linkTarget(link);
}

/** One table's routes, one candidate per prefix: lowest metric first, then dump order. */
function tableCandidates(
  routes: RawRoute[],
  family: Family,
  byName: Map<string, LinkInfo>,
  loopback: LinkInfo | undefined,
  notes: RouteNote[],
): Map<string, Candidate> {
  const best = new Map<string, Candidate>();
  for (const route of routes) {
    const note = (reason: string) => notes.push({ family, prefix: route.dst, reason });
    if (route.tos && !/^(0|0x0+)$/.test(route.tos)) {
      note(`route selects tos ${route.tos}; connections with tos 0 never match it, skipped`);
      continue;
    }
    if (route.flags.includes("dead")) continue;
    const prefix = parseRouteDst(route.dst, family);
    if (!prefix) {
      note("unreadable destination, skipped");
      continue;
    }
    const target = resolve(route, family, byName, loopback, note);
    if (!target) continue;
    const key = prefixText(prefix);
    const held = best.get(key);
    if (!held || route.metric < held.metric)
      best.set(key, { ...prefix, target, metric: route.metric });
  }
  return best;
}

/**
 * Merges the local table into main. IPv6, and IPv4 once policy rules exist, look up the local
 * table first (rule 0): a local prefix then wins over any main prefix, however specific. With
 * only the default rules, IPv4 keeps both tables in one trie and the longest prefix wins.
 */
function mergeLocal(
  main: Map<string, Candidate>,
  local: Map<string, Candidate>,
  localFirst: boolean,
  note: (prefix: string, reason: string) => void,
): Candidate[] {
  const locals = [...local.values()].sort((a, b) => b.prefixlen - a.prefixlen);
  const merged = new Map(local);
  for (const [key, route] of main) {
    if (merged.has(key)) continue;
    const owner = locals.find((l) => prefixContains(l, route));
    if (owner && !localFirst)
      note(
        key,
        `inside local ${prefixText(owner)}: the kernel prefers it only if ip rules were ever added here`,
      );
    // addresses in a main route inside a local prefix still resolve to that local entry
    merged.set(key, owner && localFirst ? { ...route, target: owner.target } : route);
  }
  return [...merged.values()];
}

function compareEntries(a: RouteEntry, b: RouteEntry): number {
  if (a.prefixlen !== b.prefixlen) return b.prefixlen - a.prefixlen;
  for (let i = 0; i < a.addr.length; i++) {
    const d = (a.addr[i] ?? 0) - (b.addr[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function familyEntries(
  family: Family,
  localFirst: boolean,
  main: RawRoute[],
  local: RawRoute[],
  byName: Map<string, LinkInfo>,
  loopback: LinkInfo | undefined,
  notes: RouteNote[],
): RouteEntry[] {
  let merged = mergeLocal(
    tableCandidates(main, family, byName, loopback, notes),
    tableCandidates(local, family, byName, loopback, notes),
    localFirst,
    (prefix, reason) => notes.push({ family, prefix, reason }),
  );
  if (loopback) {
    // connect() to 0.0.0.0 or :: goes to this host by loopback before any table is consulted
    const size = family === 4 ? 4 : 16;
    const any: Candidate = {
      family,
      addr: new Uint8Array(size),
      prefixlen: size * 8,
      target: linkTarget(loopback),
      metric: 0,
    };
    // a new list, not a splice of one: a full routing table has more routes than a call takes arguments
    merged = merged.filter((c) => !(c.prefixlen === any.prefixlen && c.addr.every((b) => b === 0)));
    merged.push(any);
  }
  return merged
    .map((c): RouteEntry => ({ addr: c.addr, prefixlen: c.prefixlen, ...c.target }))
    .sort(compareEntries);
}

const DEFAULT_RULES = new Set(["0:local", "32766:main", "32767:default"]);

/** Rules beyond the defaults (local, main, default tables for all traffic). */
function customRules(rules: RawRule[]): RawRule[] {
  return rules.filter(
    (r) => r.selective || r.action !== "" || !DEFAULT_RULES.has(`${r.priority}:${r.table}`),
  );
}

function ruleNotes(extra: RawRule[], family: Family): RouteNote[] {
  if (extra.length === 0) return [];
  const list = extra.map((r) => `${r.priority}:${r.table || r.action}`).join(", ");
  return [
    {
      family,
      prefix: "",
      reason: `policy routing rules (${list}) are not mirrored: the image follows the local and main tables only`,
    },
  ];
}

/** Masters whose ports carry no address of their own: the IP layer sees the master. */
const LAYER2_MASTERS = new Set(["bridge", "bond", "team"]);
/** Links stacked on a lower device and told from it by their own MAC address. */
const MAC_STACKED = new Set(["macvlan", "macvtap"]);
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function toLinkInfo(raw: RawLink, kindOf: (ifname: string) => string = () => ""): LinkInfo {
  const link: LinkInfo = {
    ifindex: raw.ifindex,
    ifname: raw.ifname,
    kind: raw.kind,
    tunnel: isTunnelLink(raw),
  };
  if (raw.master && LAYER2_MASTERS.has(kindOf(raw.master))) link.master = raw.master;
  if (MAC_STACKED.has(raw.kind) && raw.link && MAC.test(raw.address)) {
    link.lower = raw.link;
    link.mac = raw.address.toLowerCase();
  }
  return link;
}

export function buildImage(dump: NamespaceDump): BuiltImage {
  const kinds = new Map(dump.links.map((l) => [l.ifname, l.kind]));
  const links = dump.links
    .filter((l) => l.ifindex > 0 && l.ifname)
    .map((l) => toLinkInfo(l, (name) => kinds.get(name) ?? ""));
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const lo = dump.links.find((l) => l.flags.includes("LOOPBACK"))?.ifname ?? "lo";
  const loopback = byName.get(lo);
  const custom4 = customRules(dump.rules4);
  const notes: RouteNote[] = [...ruleNotes(custom4, 4), ...ruleNotes(customRules(dump.rules6), 6)];
  const image: RouteImage = {
    v4: familyEntries(4, custom4.length > 0, dump.main4, dump.local4, byName, loopback, notes),
    v6: familyEntries(6, true, dump.main6, dump.local6, byName, loopback, notes),
  };
  if (image.v6.some((e) => e.prefixlen <= 64 && e.addr[0] === 0xfe && (e.addr[1] ?? 0) >> 6 === 2))
    notes.push({
      family: 6,
      prefix: "fe80::/10",
      reason: "link-local destinations leave by the socket's scope id, not by the route",
    });
  return { image, links, notes };
}
