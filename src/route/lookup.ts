// Longest-prefix lookup in an image, as the kernel's LPM trie answers it. The reference side and
// the tests use it; the kernel never runs this code.
import { addressBytes, maskBytes } from "./prefix.ts";
import type { RouteEntry, RouteImage } from "./types.ts";

/** prefix lengths, longest first, each with its entries keyed by masked address */
type Index = { prefixlen: number; byAddr: Map<string, RouteEntry> }[];

const indexes = new WeakMap<RouteEntry[], Index>();

const key = (addr: Uint8Array): string => Buffer.from(addr).toString("hex");

function indexOf(entries: RouteEntry[]): Index {
  let index = indexes.get(entries);
  if (index) return index;
  const byLen = new Map<number, Map<string, RouteEntry>>();
  for (const e of entries) {
    const m = byLen.get(e.prefixlen) ?? new Map<string, RouteEntry>();
    // first entry wins, like a map update that refuses duplicates
    const k = key(maskBytes(e.addr, e.prefixlen));
    if (!m.has(k)) m.set(k, e);
    byLen.set(e.prefixlen, m);
  }
  index = [...byLen]
    .sort((a, b) => b[0] - a[0])
    .map(([prefixlen, byAddr]) => ({ prefixlen, byAddr }));
  indexes.set(entries, index);
  return index;
}

/**
 * The route a connection to `address` would leave by, or null when no route matches (connect()
 * then fails with ENETUNREACH). An IPv4-mapped IPv6 address is looked up as IPv4.
 * Entries must not be mutated after the first lookup (the index is cached per array).
 */
export function lookup(image: RouteImage, address: string | Uint8Array): RouteEntry | null {
  const addr = addressBytes(address);
  if (!addr) return null;
  const entries = addr.length === 4 ? image.v4 : image.v6;
  for (const { prefixlen, byAddr } of indexOf(entries)) {
    const hit = byAddr.get(key(maskBytes(addr, prefixlen)));
    if (hit) return hit;
  }
  return null;
}
