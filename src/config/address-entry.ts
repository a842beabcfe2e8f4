// One layer3 list entry as written ("10.0.0.0/8", "!a-b", "set:corp", "*.example.org") -> its meaning.
// Pure: shared by the loader and anything that needs to read entries the same way.

import { familyBits, familyMax, formatIp, parseIp, type Family } from "./ip.ts";
import { fail, ok, type Parsed } from "./parsed.ts";
import { toAsciiName } from "./punycode.ts";

/** "one" = `*.name`, exactly one label below; "any" = `**.name`, any depth below; null = exact. */
export type NameWildcard = "one" | "any" | null;

/** The pattern an entry is written as: `name`, `*.name` or `**.name`. */
export function namePattern(entry: { name: string; wildcard: NameWildcard }): string {
  return entry.wildcard === "any"
    ? `**.${entry.name}`
    : entry.wildcard === "one"
      ? `*.${entry.name}`
      : entry.name;
}

export type IntervalTarget = {
  kind: "interval";
  family: Family;
  start: bigint;
  end: bigint;
  hostBitsSet?: boolean;
};

export type AddressTarget =
  | IntervalTarget
  | { kind: "hostname"; name: string; wildcard: NameWildcard }
  | { kind: "set"; set: string };

export interface ParsedAddressEntry {
  negate: boolean;
  target: AddressTarget;
}

/** UTF-16 units of the longest text that may encode to a 253-character name (and its dot). */
const MAX_NAME_UNITS = 2 * 254;

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A DNS name: dot-separated labels, not all-numeric at the end (so "10.0.0.300" is a bad IPv4,
 * not a host). Lower-cased, without a trailing dot, non-ASCII labels in A-label form.
 */
export function parseHostname(text: string): Parsed<{ name: string; wildcard: NameWildcard }> {
  const wildcard: NameWildcard = text.startsWith("**.")
    ? "any"
    : text.startsWith("*.")
      ? "one"
      : null;
  const prefix = wildcard === "any" ? 3 : wildcard === "one" ? 2 : 0;
  // no name is over 253 characters, and Punycode is never shorter than the code points it
  // encodes: a longer text (composed, as encoding composes it) is refused before encoding,
  // whose time grows with the square of a label's length (a feed's line may be any length)
  const composed = text.slice(prefix).normalize("NFC");
  if (composed.length > MAX_NAME_UNITS) return fail(`'${text}' is not a valid hostname`);
  const name = toAsciiName(composed).replace(/\.$/, "");
  const labels = name.split(".");
  if (name.length === 0 || name.length > 253 || !labels.every((l) => LABEL.test(l)))
    return fail(`'${text}' is not a valid hostname`);
  if (/^\d+$/.test(labels[labels.length - 1] ?? ""))
    return fail(`'${text}' is not a valid hostname (its last label is a number)`);
  return ok({ name, wildcard });
}

function parseCidr(text: string): Parsed<AddressTarget> {
  const [addr = "", len = "", extra] = text.split("/");
  if (extra !== undefined) return fail(`'${text}' is not a CIDR (more than one '/')`);
  const ip = parseIp(addr);
  if (!ip.ok) return ip;
  const bits = familyBits(ip.value.family);
  if (!/^\d{1,3}$/.test(len) || Number(len) > bits)
    return fail(
      `'${text}' has a bad prefix length '/${len}' (0-${bits} for IPv${ip.value.family})`,
    );
  const hostBits = BigInt(bits - Number(len));
  const hostMask = (1n << hostBits) - 1n;
  const start = ip.value.value & (familyMax(ip.value.family) ^ hostMask);
  return ok({
    kind: "interval",
    family: ip.value.family,
    start,
    end: start | hostMask,
    hostBitsSet: (ip.value.value & hostMask) !== 0n,
  });
}

function parseRange(text: string, from: string, to: string): Parsed<AddressTarget> {
  const a = parseIp(from);
  if (!a.ok) return a;
  const b = parseIp(to);
  if (!b.ok) return b;
  if (a.value.family !== b.value.family)
    return fail(`'${text}' mixes IPv${a.value.family} and IPv${b.value.family}`);
  if (a.value.value > b.value.value) return fail(`'${text}' is an empty range (start > end)`);
  return ok({ kind: "interval", family: a.value.family, start: a.value.value, end: b.value.value });
}

const SET_REF = /^set:(.*)$/;
const RANGE_SIDE = /^[0-9a-fA-F:.]+$/;

/**
 * The sides of "a-b": one dash between two runs of hex digits, dots and colons that each hold a
 * dot or a colon. Read in steps, not by one pattern: a pattern with a run on each side of the dot
 * backtracks on every split of a long text (a feed's line of "1.1.1.…" took seconds).
 */
function rangeSides(body: string): [string, string] | undefined {
  const dash = body.indexOf("-");
  if (dash < 0 || body.includes("-", dash + 1)) return undefined;
  const from = body.slice(0, dash);
  const to = body.slice(dash + 1);
  const side = (s: string) => RANGE_SIDE.test(s) && (s.includes(".") || s.includes(":"));
  return side(from) && side(to) ? [from, to] : undefined;
}

/** Reads an entry; the error says what the text looked like it tried to be. */
export function parseAddressEntry(text: string): Parsed<ParsedAddressEntry> {
  const negate = text.startsWith("!");
  const body = (negate ? text.slice(1) : text).trim();
  if (body === "") return fail(`'${text}' is empty after '!'`);
  if (body.startsWith("!")) return fail(`'${text}' has more than one '!'`);
  const target = parseTarget(body);
  return target.ok ? ok({ negate, target: target.value }) : target;
}

/**
 * An IPv4 address or CIDR written plainly ("10.1.2.3", "10.0.0.0/8"), the entry most lists hold,
 * read in one pass with numbers (a bigint only for the result); undefined for anything else, a
 * mistake too, which the general reading then takes (and words the error of). What it reads,
 * parseAddressEntry reads the same: not negated, this target.
 */
export function ipv4Target(body: string): IntervalTarget | undefined {
  let value = 0;
  let part = -1;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + part;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return undefined; // a leading zero
      part = digits === 0 ? c - 48 : part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else if (c === 47 /* / */) break;
    else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  value = value * 256 + part;
  if (i === body.length) {
    const address = BigInt(value);
    return { kind: "interval", family: 4, start: address, end: address };
  }
  // the prefix length: 1 to 3 digits (leading zeros read as parseCidr reads them), at most 32
  const lenDigits = body.length - i - 1;
  if (lenDigits < 1 || lenDigits > 3) return undefined;
  let len = 0;
  for (let j = i + 1; j < body.length; j++) {
    const c = body.charCodeAt(j);
    if (c < 48 || c > 57) return undefined;
    len = len * 10 + (c - 48);
  }
  if (len > 32) return undefined;
  const size = 2 ** (32 - len);
  const host = value % size;
  const start = BigInt(value - host);
  return {
    kind: "interval",
    family: 4,
    start,
    end: size === 1 ? start : BigInt(value - host + size - 1),
    hostBitsSet: host !== 0,
  };
}

function parseTarget(body: string): Parsed<AddressTarget> {
  const c = body.charCodeAt(0);
  if (c >= 48 && c <= 57) {
    const v4 = ipv4Target(body);
    if (v4) return ok(v4);
  }
  const setRef = SET_REF.exec(body);
  if (setRef) return ok({ kind: "set", set: setRef[1] ?? "" });
  if (body.includes("/")) return parseCidr(body);
  const range = rangeSides(body);
  if (range) return parseRange(body, range[0], range[1]);
  if (body.includes(":") || /^[0-9.]+$/.test(body)) {
    const ip = parseIp(body);
    if (!ip.ok) return ip;
    return ok({
      kind: "interval",
      family: ip.value.family,
      start: ip.value.value,
      end: ip.value.value,
    });
  }
  const host = parseHostname(body);
  if (host.ok) return ok({ kind: "hostname", ...host.value });
  return fail(`'${body}' is not an IP address, CIDR, "a-b" range, set:NAME or hostname`);
}

const MAPPED_START = 0xffff00000000n;
const MAPPED_END = 0xffffffffffffn;

/** An interval inside ::ffff:0:0/96: connections to such addresses are judged as IPv4. */
export function isV4Mapped(t: { family: Family; start: bigint; end: bigint }): boolean {
  return t.family === 6 && t.start >= MAPPED_START && t.end <= MAPPED_END;
}

/** What to write instead of an IPv4-mapped entry, which never matches. */
export function v4MappedWarning(text: string, start: bigint, end: bigint): string {
  const v4 = (n: bigint) => [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join(".");
  const write =
    start === end ? `the IPv4 address (${v4(start)})` : `the IPv4 range (${v4(start)}-${v4(end)})`;
  return `'${text}' is an IPv4-mapped IPv6 address: moat judges connections to such addresses as IPv4, so this entry never matches; write ${write}`;
}

/** "10.1.2.3/8" means 10.0.0.0/8: say so, since the writer may have meant a single host. */
export function hostBitsWarning(text: string, family: Family, start: bigint): string {
  const prefix = text.split("/")[1] ?? "";
  return `'${text}' has host bits set: it means ${formatIp({ family, value: start })}/${prefix}`;
}
