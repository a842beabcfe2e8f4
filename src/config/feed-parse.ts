// A feed's text -> its address entries (plain lines, a CSV column, or a STIX 2.1 bundle's
// indicators whose patterns are address equalities or ORs of them). Pure. What is not taken is
// counted, never silently dropped: the counts are reported.

import { parseAddressEntry, type IntervalTarget } from "./address-entry.ts";
import { formatIp, parseIp, unmapIpv4 } from "./ip.ts";
import { jsonNestsDeeper } from "./json-depth.ts";

export type FeedFormat = "plain" | "csv" | "stix";

export interface FeedLine {
  value: string;
  /** 1-based line of the text (STIX: the line of the bundle, 1). */
  line: number;
  col: number;
  /** STIX: its indicator's `valid_until`, ms since the epoch (none: no end). */
  until?: number;
}

export interface FeedParse {
  entries: FeedLine[];
  /** Lines, records or indicators not taken because they cannot be read, by reason. */
  refused: Map<string, number>;
  /**
   * STIX: indicators read and not in force now (revoked, past `valid_until`, before
   * `valid_from`), by reason. The publisher says so: a body of only these is a good body with no
   * entry, not a body that could not be read.
   */
  notInForce: Map<string, number>;
  /**
   * STIX: when the list changes with no new body (ms since the epoch): the earliest
   * `valid_until` of the indicators taken (when one has an address taken) or `valid_from` of
   * those not yet valid.
   */
  until?: number;
}

/**
 * Counts one refusal. A reason is always moat's own fixed words, never a feed's text: the reasons
 * are few, and what a hostile feed writes never reaches a warning or the daemon's log.
 */
const count = (m: Map<string, number>, reason: string) => m.set(reason, (m.get(reason) ?? 0) + 1);

/**
 * The feed's entries that a set takes (addresses, CIDRs, ranges: no negation, no names), the rest
 * counted by reason: what the policy loader puts in the set, and what the daemon checks a fetched
 * body by before it replaces the last good one. An IPv4-mapped IPv6 entry is taken as the IPv4
 * entry it carries: connections to such addresses are judged as IPv4, so as written it would
 * never match.
 */
export function feedAddresses(text: string, format: FeedFormat, column = 1): FeedParse {
  const parsed = parseFeed(text, format, column);
  let until = parsed.until;
  const entries: FeedLine[] = [];
  for (const e of parsed.entries) {
    const entry = parseAddressEntry(e.value);
    if (!entry.ok || entry.value.negate || entry.value.target.kind !== "interval") {
      count(parsed.refused, "not an address, CIDR or range");
      continue;
    }
    const target = entry.value.target;
    // one such line would block (or allow) the whole internet: a feed lists threats, not "any"
    if (coversFamily(target)) {
      count(parsed.refused, "covers every address of its family");
      continue;
    }
    if (e.until !== undefined && (until === undefined || e.until < until)) until = e.until;
    entries.push(target.family === 6 ? { ...e, value: unmapped(e.value, target) } : e);
  }
  return {
    entries,
    refused: parsed.refused,
    notInForce: parsed.notInForce,
    ...(until !== undefined ? { until } : {}),
  };
}

/** Whether an entry is every address of its family (0.0.0.0/0, ::/0, ::ffff:0:0/96 as IPv4). */
function coversFamily(target: IntervalTarget): boolean {
  const start = unmapIpv4({ family: target.family, value: target.start });
  const end = unmapIpv4({ family: target.family, value: target.end });
  if (start.family !== end.family) return false;
  return start.value === 0n && end.value === (1n << (start.family === 4 ? 32n : 128n)) - 1n;
}

/** An entry inside ::ffff:0:0/96 written as the IPv4 entry it carries; any other as it is. */
function unmapped(value: string, target: IntervalTarget): string {
  const start = unmapIpv4({ family: target.family, value: target.start });
  const end = unmapIpv4({ family: target.family, value: target.end });
  if (start.family !== 4 || end.family !== 4) return value;
  if (start.value === end.value) return formatIp(start);
  const [address = "", length] = value.split("/");
  const ip = parseIp(address);
  // a CIDR keeps its own address (host bits and all: the loader warns of them as written)
  if (length !== undefined && ip.ok)
    return `${formatIp(unmapIpv4(ip.value))}/${Number(length) - 96}`;
  return `${formatIp(start)}-${formatIp(end)}`;
}

export function parseFeed(text: string, format: FeedFormat, column = 1): FeedParse {
  // a UTF-8 byte order mark opens some exports: it is no part of the first line or JSON value
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (format === "stix") return parseStix(body);
  if (format === "csv") return parseCsv(body, column);
  const entries: FeedLine[] = [];
  body.split(/\r?\n/).forEach((raw, i) => {
    const content = raw.slice(0, commentAt(raw));
    const trimmed = content.trim();
    if (trimmed !== "")
      entries.push({ value: trimmed, line: i + 1, col: content.indexOf(trimmed) + 1 });
  });
  return { entries, refused: new Map(), notInForce: new Map() };
}

/**
 * Where a line's comment starts: its first # (else its length). Found by a search, not by a
 * pattern running to the line's end, which a lone CR stops: tried again from every later #, that
 * took time squared in a hostile line's length, and kept the comment.
 */
export function commentAt(line: string): number {
  const hash = line.indexOf("#");
  return hash < 0 ? line.length : hash;
}

/**
 * A CSV feed's cells of `column`, record by record (RFC 4180: a record ends at a line break
 * outside quotes; a cell in quotes may hold commas, line breaks and "" for a quote). A # outside
 * quotes starts a comment to the end of its line; blank lines are skipped. A first record that is
 * a header (isCsvHeader) is no entry: a header alone is a list with nothing listed now.
 */
function parseCsv(text: string, column: number): FeedParse {
  const entries: FeedLine[] = [];
  const refused = new Map<string, number>();
  let line = 1;
  let first = true;
  for (let at = 0; at < text.length;) {
    const record = readCsvRecord(text, at, column - 1);
    const cell = record.cell?.trim();
    if (record.unclosed) count(refused, "quote not closed");
    else if (record.blank) {
      // nothing to take
    } else if (first && record.breaks <= 1 && isCsvHeader(text.slice(at, record.next), column)) {
      // the column names
    } else if (cell === undefined || cell === "") count(refused, `no column ${column}`);
    else entries.push({ value: cell, line, col: 1 });
    if (!record.blank) first = false;
    line += record.breaks;
    at = record.next;
  }
  return { entries, refused, notInForce: new Map() };
}

/** A header's cell: a name (a letter, then letters, digits, blanks, `_`, `-`, `.`), quoted or not. */
const HEADER_CELL = /^(?:[A-Za-z][\w .-]*|"[A-Za-z][\w .-]*")$/;
/** Longer than any header a feed writes: a longer first line is not looked at as one. */
const MAX_HEADER = 4096;

/**
 * Whether a CSV record (one line) is a header: two cells or more, up to `column` at least, each
 * a name. One cell alone is not (a one-word error page, "Forbidden", would empty the set); a
 * name never reads as an address (an IPv6 one holds a colon).
 */
function isCsvHeader(record: string, column: number): boolean {
  if (record.length > MAX_HEADER) return false;
  const cells = record.replace(/\r?\n$/, "").split(",");
  return (
    cells.length >= Math.max(2, column) && cells.every((cell) => HEADER_CELL.test(cell.trim()))
  );
}

interface CsvRecord {
  /** Where the next record starts. */
  next: number;
  /** The line breaks it spans (in quotes, and the one that ends it). */
  breaks: number;
  /** The cell asked for, none when the record is shorter. */
  cell: string | undefined;
  /** Blanks only, or a comment: no record. */
  blank: boolean;
  /** A quote opened and not closed before the text's end: the record cannot be read. */
  unclosed: boolean;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const HASH = 0x23;
const SPACE = 0x20;
const TAB = 0x09;

/**
 * The record at `start`, keeping only cell `want` (0-based). Every character is looked at a fixed
 * number of times, and only the cell asked for is copied: a body of 64 MiB of commas or quotes
 * is read in one pass.
 */
function readCsvRecord(text: string, start: number, want: number): CsvRecord {
  let breaks = 0;
  let cell: string | undefined;
  let quotes = false;
  for (let field = 0, at = start; ; field++) {
    let i = at;
    while (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB) i++;
    let quoted: string | undefined;
    // a quote opens a quoted cell only where the cell starts; inside one it is the cell's text
    if (text.charCodeAt(i) === QUOTE) {
      quotes = true;
      const q = quotedCell(text, i + 1);
      breaks += q.breaks;
      if (q.close < 0)
        return { next: text.length, breaks, cell: undefined, blank: false, unclosed: true };
      if (field === want) quoted = quotedText(text, i + 1, q.close, q.escapes);
      i = q.close + 1;
    }
    const end = cellEnd(text, i);
    // what follows a closing quote before the comma is kept as the cell's text
    if (field === want)
      cell = quoted === undefined ? text.slice(at, end) : quoted + text.slice(i, end);
    if (end < text.length && text.charCodeAt(end) === COMMA) {
      at = end + 1;
      continue;
    }
    const blank = field === 0 && !quotes && text.slice(at, end).trim() === "";
    let next = end;
    if (text.charCodeAt(end) === HASH) {
      const lf = text.indexOf("\n", end);
      next = lf < 0 ? text.length : lf;
    }
    if (next < text.length) {
      breaks++;
      next++;
    }
    return { next, breaks, cell, blank, unclosed: false };
  }
}

/**
 * A quoted cell whose text starts at `from`: the quote closing it (-1: none before the end), the
 * line breaks in it, and whether it holds "" (a quote).
 */
function quotedCell(
  text: string,
  from: number,
): { close: number; breaks: number; escapes: boolean } {
  let breaks = 0;
  let escapes = false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) breaks++;
    else if (c === QUOTE) {
      if (text.charCodeAt(i + 1) !== QUOTE) return { close: i, breaks, escapes };
      escapes = true;
      i++;
    }
  }
  return { close: -1, breaks, escapes };
}

/**
 * A quoted cell's text, each "" read as one quote: copied unit by unit into one buffer (a
 * replace of megabytes of "" builds the string in seconds).
 */
function quotedText(text: string, from: number, to: number, escapes: boolean): string {
  if (!escapes) return text.slice(from, to);
  const units = new Uint16Array(to - from);
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    units[n++] = c;
    if (c === QUOTE) i++;
  }
  return new TextDecoder("utf-16le").decode(units.subarray(0, n));
}

/** Where an unquoted cell (or a quoted cell's tail) ends: a comma, a line feed, a # or the end. */
function cellEnd(text: string, from: number): number {
  let i = from;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === COMMA || c === LF || c === HASH) break;
  }
  return i;
}

/**
 * " OR " with the blanks around it, tried only where a run of blanks starts: tried inside a run
 * too, a long run without an OR after it costs its length squared (a feed's body is untrusted).
 */
const OR = /(?<!\s)\s+OR\s+/;
const COMPARISON = /^(\[?)\s*(ipv4-addr|ipv6-addr):value\s*=\s*'([^'\\]+)'\s*(\]?)$/;

interface StixComparison {
  type: "ipv4-addr" | "ipv6-addr";
  value: string;
}

/**
 * The comparisons of a STIX pattern that is `[ipv4-addr:value = 'X']`, `[ipv6-addr:...]` or ORs
 * of them (inside one bracket or between brackets); null for any other pattern, one whose
 * brackets do not open and close around its comparisons too.
 */
function stixComparisons(pattern: string): StixComparison[] | null {
  const out: StixComparison[] = [];
  let inBracket = false;
  for (const part of pattern.trim().split(OR)) {
    const m = COMPARISON.exec(part.trim());
    if (!m?.[3]) return null;
    // a bracket opens only outside one, and a comparison is always inside one
    if ((m[1] === "[") === inBracket) return null;
    inBracket = m[4] !== "]";
    out.push({ type: m[2] === "ipv6-addr" ? "ipv6-addr" : "ipv4-addr", value: m[3] });
  }
  return inBracket ? null : out;
}

/** The addresses a STIX pattern of address equalities matches; null for any other pattern. */
export function stixPatternAddresses(pattern: string): string[] | null {
  return stixComparisons(pattern)?.map((c) => c.value) ?? null;
}

/**
 * Deeper than a STIX bundle nests (bundle, objects, an object, its lists and extensions): refused
 * by one linear scan before JSON.parse, which takes seconds on megabytes of `[`.
 */
const MAX_STIX_DEPTH = 16;

/** RFC 3339, as STIX writes its timestamps (`Z`; an offset is read too). */
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** A STIX timestamp property: ms since the epoch, undefined when absent, NaN when unreadable. */
function stixTime(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const m = typeof value === "string" ? TIMESTAMP.exec(value) : null;
  if (!m) return NaN;
  const [year, month, day, hour, minute, second, offsetHour, offsetMinute] = m
    .slice(1)
    .map((part) => Number(part ?? 0));
  // Date.parse reads February 30 as March 2: a day past its month's end is no timestamp
  const days = new Date(Date.UTC(year ?? 0, month ?? 0, 0)).getUTCDate();
  const fits = (n: number | undefined, min: number, max: number) =>
    n !== undefined && n >= min && n <= max;
  const readable =
    fits(month, 1, 12) &&
    fits(day, 1, days) &&
    fits(hour, 0, 23) &&
    fits(minute, 0, 59) &&
    fits(second, 0, 59) &&
    fits(offsetHour, 0, 23) &&
    fits(offsetMinute, 0, 59);
  return readable ? Date.parse(m[0]) : NaN;
}

/** What an indicator says of itself (revoked, valid_until, valid_from), or why it is unreadable. */
type Validity =
  | { ok: true; revoked: boolean; until: number | undefined; from: number | undefined }
  | { ok: false; why: string };

function indicatorValidity(o: Record<string, unknown>): Validity {
  if (o.revoked !== undefined && typeof o.revoked !== "boolean")
    return { ok: false, why: "revoked not true or false" };
  const until = stixTime(o.valid_until);
  if (Number.isNaN(until)) return { ok: false, why: "valid_until not a timestamp" };
  const from = stixTime(o.valid_from);
  if (Number.isNaN(from)) return { ok: false, why: "valid_from not a timestamp" };
  return { ok: true, revoked: o.revoked === true, until, from };
}

function parseStix(text: string, now = Date.now()): FeedParse {
  const entries: FeedLine[] = [];
  const refused = new Map<string, number>();
  const notInForce = new Map<string, number>();
  let nextFrom: number | undefined;
  const result = (): FeedParse => ({
    entries,
    refused,
    notInForce,
    ...(nextFrom !== undefined ? { until: nextFrom } : {}),
  });
  if (jsonNestsDeeper(text, MAX_STIX_DEPTH)) {
    count(refused, "nested deeper than a STIX bundle");
    return result();
  }
  let bundle: unknown;
  try {
    bundle = JSON.parse(text);
  } catch {
    count(refused, "not JSON");
    return result();
  }
  const { type, objects } = (bundle ?? {}) as { type?: unknown; objects?: unknown };
  // a bundle's objects are optional (STIX 2.1): a bundle without them lists nothing now
  if (type === "bundle" && objects === undefined) return result();
  if (!Array.isArray(objects)) {
    count(refused, "not a STIX bundle (no objects)");
    return result();
  }
  for (const object of objects as unknown[]) {
    const o = object as Record<string, unknown> | null;
    if (o?.type !== "indicator") continue;
    const validity = indicatorValidity(o);
    if (!validity.ok) {
      count(refused, validity.why);
      continue;
    }
    const { until, from } = validity;
    // revoked or expired: whatever its pattern, the publisher withdrew it
    if (validity.revoked) {
      count(notInForce, "revoked indicator");
      continue;
    }
    if (until !== undefined && until <= now) {
      count(notInForce, "expired indicator");
      continue;
    }
    if (o.pattern_type !== undefined && o.pattern_type !== "stix") {
      // the feed's value is not the reason: each distinct one would be a reason of its own
      // (a message as long as the feed), and its text would reach the daemon's log
      count(refused, "pattern_type not stix");
      continue;
    }
    const comparisons = typeof o.pattern === "string" ? stixComparisons(o.pattern) : null;
    if (!comparisons) {
      count(refused, "pattern other than address equalities");
      continue;
    }
    // an IPv6 address is never an ipv4-addr's value, nor an IPv4 one an ipv6-addr's
    if (comparisons.some((c) => c.value.includes(":") !== (c.type === "ipv6-addr"))) {
      count(refused, "address not of its pattern's type (ipv4-addr, ipv6-addr)");
      continue;
    }
    if (from !== undefined && from > now) {
      // in force from valid_from: the list changes then, and is read again
      count(notInForce, "not yet valid indicator");
      if (nextFrom === undefined || from < nextFrom) nextFrom = from;
      continue;
    }
    for (const c of comparisons)
      entries.push({ value: c.value, line: 1, col: 1, ...(until !== undefined ? { until } : {}) });
  }
  return result();
}
