// Addresses as the kernel reports them: 16 bytes, IPv4 as ::ffff:a.b.c.d.

/** The 16 bytes at `at` of `bytes` (an event record's field, read in place). */
export function formatAddress(bytes: Buffer, family: number, at = 0): string {
  if (family === 4)
    return `${bytes[at + 12]}.${bytes[at + 13]}.${bytes[at + 14]}.${bytes[at + 15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(at + i).toString(16));
  // compress the longest run of zero groups, as inet_ntop does
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** Parses "a.b.c.d" or an IPv6 address into network-order bytes (4 or 16). */
export function parseAddress(text: string): Buffer {
  if (text.includes(".") && !text.includes(":")) {
    const parts = text.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
      throw new Error(`not an IPv4 address: ${text}`);
    }
    return Buffer.from(parts);
  }
  const [head = "", tail] = text.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<string>(fill).fill("0"), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) {
    throw new Error(`not an IPv6 address: ${text}`);
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** An address as the kernel keys it: 16 bytes, IPv4 as ::ffff:a.b.c.d. */
export function mappedAddress(text: string): Buffer {
  const v4 = mappedV4(text);
  if (v4) return v4;
  const raw = parseAddress(text);
  if (raw.length === 16) return raw;
  const out = Buffer.alloc(16);
  out[10] = 0xff;
  out[11] = 0xff;
  raw.copy(out, 12);
  return out;
}

/**
 * An address as the kernel keys it, written into `out` at `at` (16 bytes): mappedAddress without
 * a new buffer (the DNS proxy's lookup of a client's original destination does this per query).
 */
export function writeMappedAddress(text: string, out: Buffer, at = 0): void {
  if (!writeMappedV4(text, out, at)) mappedAddress(text).copy(out, at);
}

/** "a.b.c.d" as ::ffff:a.b.c.d, read without splitting (the DNS proxy does this per query). */
function mappedV4(text: string): Buffer | null {
  if (text.length > 15) return null;
  const out = Buffer.alloc(16);
  return writeMappedV4(text, out, 0) ? out : null;
}

/** mappedV4 into `out` at `at` (all 16 bytes); false, and `out` in part written, when not IPv4. */
function writeMappedV4(text: string, out: Buffer, at: number): boolean {
  if (text.length > 15) return false;
  out.fill(0, at, at + 10);
  out[at + 10] = 0xff;
  out[at + 11] = 0xff;
  let part = at + 12;
  let value = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (value < 0 || part >= at + 15) return false;
      out[part++] = value;
      value = -1;
    } else if (c >= 48 && c <= 57) {
      value = value < 0 ? c - 48 : value * 10 + (c - 48);
      if (value > 255) return false;
    } else return false;
  }
  if (value < 0 || part !== at + 15) return false;
  out[at + 15] = value;
  return true;
}
