// What the new-destination and beacon detectors call a destination: the registrable domain of
// the peer's DNS name where moat knows one (api.github.com -> github.com), else its address
// prefix (a /24 of IPv4, a /48 of IPv6), so a service moving between addresses of one network, or
// between hosts of one domain, is one destination. Pure.
import { isIPv4 } from "node:net";
import { registrableDomain } from "../registrable-domain.ts";

/** The labels of `name` below its registrable domain ("a.b.example.com" -> "a.b"). */
export function subdomainOf(name: string): string {
  const n = name.toLowerCase().replace(/\.$/, "");
  const reg = registrableDomain(n);
  return n.length > reg.length ? n.slice(0, n.length - reg.length - 1) : "";
}

/** An address's prefix: /24 for IPv4, /48 for IPv6. */
export function prefixOf(ip: string): string {
  if (isIPv4(ip)) return `${ip.split(".").slice(0, 3).join(".")}.0/24`;
  if (ip.startsWith("::ffff:") && isIPv4(ip.slice(7))) return prefixOf(ip.slice(7));
  const [head = "", tail] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail !== undefined ? (tail ? tail.split(":") : []) : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 3)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/48`;
}

/** Destinations of recent names and addresses: most records are of peers seen a moment ago. */
const cache = new Map<string, string>();
const CACHE_SIZE = 16_384;

/** A peer as a destination: its registrable domain where it has a name, else its prefix. */
export function destinationOf(remote: { ip: string; names?: string[] }): string {
  const name = remote.names?.[0];
  const key = name ?? remote.ip;
  let d = cache.get(key);
  if (d === undefined) {
    d = name ? registrableDomain(name) : prefixOf(remote.ip);
    if (cache.size >= CACHE_SIZE) cache.clear();
    cache.set(key, d);
  }
  return d;
}
