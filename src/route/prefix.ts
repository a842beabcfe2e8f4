// Prefixes as the kernel map wants them: network-order bytes with the host bits cleared.
import { formatIp, parseIp, unmapIpv4, type Family } from "../config/ip.ts";

export interface Prefix {
  family: Family;
  addr: Uint8Array;
  prefixlen: number;
}

export const familyBytes = (family: Family): number => (family === 4 ? 4 : 16);

export function bigintToBytes(value: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** Clears the bits past `prefixlen` (a copy). */
export function maskBytes(addr: Uint8Array, prefixlen: number): Uint8Array {
  const out = new Uint8Array(addr.length);
  for (let i = 0; i < addr.length; i++) {
    const bits = Math.min(8, Math.max(0, prefixlen - i * 8));
    out[i] = (addr[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** ip's route "dst": "default", "10.0.0.0/8", "fd00::/64" or a host address; null if unreadable. */
export function parseRouteDst(dst: string, family: Family): Prefix | null {
  if (dst === "default") return { family, addr: new Uint8Array(familyBytes(family)), prefixlen: 0 };
  const [text = "", len] = dst.split("/");
  const ip = parseIp(text);
  if (!ip.ok || ip.value.family !== family) return null;
  const max = familyBytes(family) * 8;
  const prefixlen = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > max) return null;
  const addr = bigintToBytes(ip.value.value, familyBytes(family));
  return { family, addr: maskBytes(addr, prefixlen), prefixlen };
}

/** An address to look up, as text or bytes; "::ffff:a.b.c.d" is IPv4 (the kernel routes it so). */
export function addressBytes(address: string | Uint8Array): Uint8Array | null {
  if (typeof address !== "string") {
    if (address.length === 4) return address;
    if (address.length !== 16) return null;
    const mapped =
      address.subarray(0, 10).every((b) => b === 0) && address[10] === 0xff && address[11] === 0xff;
    return mapped ? address.slice(12) : address;
  }
  const ip = parseIp(address);
  if (!ip.ok) return null;
  const plain = unmapIpv4(ip.value);
  return bigintToBytes(plain.value, familyBytes(plain.family));
}

export function prefixText(p: { addr: Uint8Array; prefixlen: number }): string {
  let value = 0n;
  for (const b of p.addr) value = (value << 8n) | BigInt(b);
  return `${formatIp({ family: p.addr.length === 4 ? 4 : 6, value })}/${p.prefixlen}`;
}

/** `inner` lies within `outer` (same family, at least as long). */
export function prefixContains(
  outer: { addr: Uint8Array; prefixlen: number },
  inner: { addr: Uint8Array; prefixlen: number },
): boolean {
  if (outer.addr.length !== inner.addr.length || inner.prefixlen < outer.prefixlen) return false;
  const a = maskBytes(inner.addr, outer.prefixlen);
  return a.every((b, i) => b === outer.addr[i]);
}
