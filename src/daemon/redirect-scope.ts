// How local a URL's host is (public, private, link-local, loopback): a feed's redirect may not
// lead to an address more local than the feed's own URL, where a public server could otherwise
// make the daemon read (and block by) what only this host or its network serves: a local
// service, a router's page, the cloud's metadata endpoint.
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

/** From the least local to the most. */
const SCOPES = ["public", "private", "link-local", "loopback"] as const;
export type Scope = (typeof SCOPES)[number];

/** Subnets by scope (an IPv4-mapped address is judged as the IPv4 address it carries). */
const SUBNETS: [Exclude<Scope, "public">, string, number, "ipv4" | "ipv6"][] = [
  // 0.0.0.0/8 and :: reach this host when connected to
  ["loopback", "0.0.0.0", 8, "ipv4"],
  ["loopback", "127.0.0.0", 8, "ipv4"],
  ["loopback", "::", 127, "ipv6"],
  ["link-local", "169.254.0.0", 16, "ipv4"],
  ["link-local", "fe80::", 10, "ipv6"],
  ["private", "10.0.0.0", 8, "ipv4"],
  ["private", "172.16.0.0", 12, "ipv4"],
  ["private", "192.168.0.0", 16, "ipv4"],
  // shared address space (carrier-grade NAT): not reachable from the internet either
  ["private", "100.64.0.0", 10, "ipv4"],
  ["private", "fc00::", 7, "ipv6"],
];
const LISTS = new Map<Scope, BlockList>();
for (const [scope, network, prefix, family] of SUBNETS) {
  const list = LISTS.get(scope) ?? new BlockList();
  list.addSubnet(network, prefix, family);
  LISTS.set(scope, list);
}

/** The scope of an IP address as text (4 or 6: its family). */
export function addressScope(address: string, family: 4 | 6): Scope {
  const type = family === 4 ? "ipv4" : "ipv6";
  for (const scope of ["loopback", "link-local", "private"] as const)
    if (LISTS.get(scope)?.check(address, type)) return scope;
  return "public";
}

const mostLocal = (scopes: Scope[]): Scope =>
  scopes.reduce<Scope>((m, s) => (SCOPES.indexOf(s) > SCOPES.indexOf(m) ? s : m), "public");

/**
 * The scope of a URL's host: an address as written; `localhost` and names under it loopback; any
 * other name the most local of the addresses it resolves to now (a name that does not resolve:
 * public, and the fetch fails on its own).
 */
export async function hostScope(url: URL): Promise<Scope> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const family = isIP(host);
  if (family === 4 || family === 6) return addressScope(host, family);
  const name = host.toLowerCase().replace(/\.$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) return "loopback";
  try {
    const found = await lookup(name, { all: true });
    return mostLocal(found.map((f) => addressScope(f.address, f.family === 6 ? 6 : 4)));
  } catch {
    return "public";
  }
}

/** Why a redirect to `target` is refused for a feed whose URL has `feedScope`; none: followed. */
export async function redirectRefusal(feedScope: Scope, target: URL): Promise<string | undefined> {
  const scope = await hostScope(target);
  if (SCOPES.indexOf(scope) <= SCOPES.indexOf(feedScope)) return undefined;
  return `a redirect to ${target.origin} is refused: a ${scope} address, more local than the feed's own`;
}
