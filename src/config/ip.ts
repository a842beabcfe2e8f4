// IP address text <-> numbers. Pure (no Node APIs): the evaluator uses it in the browser too.

import { fail, ok, type Parsed } from "./parsed.ts";

export type Family = 4 | 6;

export interface IpAddress {
  family: Family;
  /** The address as an unsigned integer: 32 bits for IPv4, 128 bits for IPv6. */
  value: bigint;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);
const MAX4 = (1n << 32n) - 1n;
const MAX6 = (1n << 128n) - 1n;
export const familyMax = (family: Family): bigint => (family === 4 ? MAX4 : MAX6);

/** Strict dotted quad: four decimal parts 0-255, no leading zeros (they would read as octal elsewhere). */
export function parseIpv4(text: string): Parsed<bigint> {
  const fast = dottedQuad(text);
  return fast >= 0 ? ok(BigInt(fast)) : parseIpv4Parts(text);
}

/** A strict dotted quad's value read in one pass (-1: not one; parseIpv4Parts says why). */
function dottedQuad(text: string): number {
  let value = 0;
  let part = -1;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = -1;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1; // a leading zero
      part = digits === 0 ? c - 48 : part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

function parseIpv4Parts(text: string): Parsed<bigint> {
  const parts = text.split(".");
  if (parts.length !== 4)
    return fail(`'${text}' is not an IPv4 address (expected 4 parts a.b.c.d)`);
  // a number, not a bigint, while adding up: 32 bits fit, and one BigInt at the end is cheaper
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part))
      return fail(`'${text}' is not an IPv4 address (bad part '${part}')`);
    if (part.length > 1 && part.startsWith("0"))
      return fail(`'${text}' is not an IPv4 address (leading zero in '${part}' is ambiguous)`);
    const n = Number(part);
    if (n > 255) return fail(`'${text}' is not an IPv4 address (${n} > 255)`);
    value = value * 256 + n;
  }
  return ok(BigInt(value));
}

function parseGroups(text: string, whole: string): Parsed<number[]> {
  if (text === "") return ok([]);
  const groups: number[] = [];
  for (const group of text.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group))
      return fail(`'${whole}' is not an IPv6 address (bad group '${group}')`);
    groups.push(parseInt(group, 16));
  }
  return ok(groups);
}

/** RFC 4291 text forms, including "::" and a trailing dotted quad; no zone ("%eth0"). */
export function parseIpv6(text: string): Parsed<bigint> {
  if (text.includes("%"))
    return fail(`'${text}' is not an IPv6 address (zones like %eth0 are not allowed)`);
  let body = text;
  const lastColon = body.lastIndexOf(":");
  if (body.slice(lastColon + 1).includes(".")) {
    // a trailing dotted quad stands for the last two groups
    const v4 = parseIpv4(body.slice(lastColon + 1));
    if (!v4.ok) return fail(`'${text}' is not an IPv6 address (bad embedded IPv4 part)`);
    const hi = (v4.value >> 16n).toString(16);
    const lo = (v4.value & 0xffffn).toString(16);
    body = `${body.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = body.split("::");
  if (halves.length > 2)
    return fail(`'${text}' is not an IPv6 address ('::' appears more than once)`);
  const head = parseGroups(halves[0] ?? "", text);
  if (!head.ok) return head;
  let groups: number[];
  if (halves.length === 2) {
    const rest = parseGroups(halves[1] ?? "", text);
    if (!rest.ok) return rest;
    const missing = 8 - head.value.length - rest.value.length;
    if (missing < 1) return fail(`'${text}' is not an IPv6 address (too many groups)`);
    groups = [...head.value, ...new Array<number>(missing).fill(0), ...rest.value];
  } else {
    groups = head.value;
    if (groups.length !== 8) return fail(`'${text}' is not an IPv6 address (expected 8 groups)`);
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return ok(value);
}

/** An IPv4 or IPv6 address; the family is told by the presence of ':'. */
export function parseIp(text: string): Parsed<IpAddress> {
  if (text.includes(":")) {
    const v6 = parseIpv6(text);
    return v6.ok ? ok({ family: 6, value: v6.value }) : v6;
  }
  const v4 = parseIpv4(text);
  return v4.ok ? ok({ family: 4, value: v4.value }) : v4;
}

const MAPPED_PREFIX = 0xffffn << 32n;

/** "::ffff:a.b.c.d" is IPv4 on the wire; judge it as the IPv4 address it carries. */
export function unmapIpv4(address: IpAddress): IpAddress {
  if (address.family === 6 && address.value >> 32n === 0xffffn)
    return { family: 4, value: address.value - MAPPED_PREFIX };
  return address;
}

export function formatIp(address: IpAddress): string {
  if (address.family === 4) {
    const v = address.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((address.value >> BigInt(i * 16)) & 0xffffn));
  // compress the longest run of two or more zero groups (RFC 5952)
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}
