// A feed's text -> its address entries (plain lines, a CSV column, or a STIX 2.1 bundle's
// indicators whose patterns are address equalities or ORs of them). Pure. What is not taken is
// counted, never silently dropped: the counts are reported.

import { parseAddressEntry } from "./address-entry.ts";

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
  /** Lines or indicators not taken, by reason. */
  refused: Map<string, number>;
  /**
   * STIX: the earliest `valid_until` (ms since the epoch) of the indicators taken, when one has
   * an address taken; the list changes then, with no new body.
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
 * body by before it replaces the last good one.
 */
export function feedAddresses(text: string, format: FeedFormat, column = 1): FeedParse {
  const parsed = parseFeed(text, format, column);
  let until: number | undefined;
  const entries = parsed.entries.filter((e) => {
    const entry = parseAddressEntry(e.value);
    if (entry.ok && !entry.value.negate && entry.value.target.kind === "interval") {
      if (e.until !== undefined && (until === undefined || e.until < until)) until = e.until;
      return true;
    }
    count(parsed.refused, "not an address, CIDR or range");
    return false;
  });
  return { entries, refused: parsed.refused, ...(until !== undefined ? { until } : {}) };
}

export function parseFeed(text: string, format: FeedFormat, column = 1): FeedParse {
  if (format === "stix") return parseStix(text);
  const entries: FeedLine[] = [];
  const refused = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const content = raw.slice(0, format === "csv" ? csvCommentAt(raw) : commentAt(raw));
    if (content.trim() === "") return;
    if (format === "plain") {
      const trimmed = content.trim();
      entries.push({ value: trimmed, line: i + 1, col: content.indexOf(trimmed) + 1 });
      return;
    }
    const cells = splitCsvLine(content);
    const cell = cells[column - 1]?.trim();
    if (cell === undefined || cell === "") count(refused, `no column ${column}`);
    else entries.push({ value: cell, line: i + 1, col: 1 });
  });
  return { entries, refused };
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

/** Where a CSV line's comment starts: its first # outside quotes (else its length). */
function csvCommentAt(line: string): number {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === "#" && !quoted) return i;
  }
  return line.length;
}

/** One CSV line (RFC 4180 quoting, "" inside quotes) -> its cells. */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      cells.push(cell);
      cell = "";
    } else cell += c;
  }
  cells.push(cell);
  return cells;
}

/**
 * " OR " with the blanks around it, tried only where a run of blanks starts: tried inside a run
 * too, a long run without an OR after it costs its length squared (a feed's body is untrusted).
 */
const OR = /(?<!\s)\s+OR\s+/;
const COMPARISON = /^\[?\s*(ipv4-addr|ipv6-addr):value\s*=\s*'([^'\\]+)'\s*\]?$/;

/**
 * The addresses a STIX pattern matches when it is `[ipv4-addr:value = 'X']`, `[ipv6-addr:...]`
 * or ORs of them (inside one bracket or between brackets); null for any other pattern.
 */
export function stixPatternAddresses(pattern: string): string[] | null {
  const parts = pattern.trim().split(OR);
  const out: string[] = [];
  for (const part of parts) {
    const m = COMPARISON.exec(part.trim());
    if (!m?.[2]) return null;
    out.push(m[2]);
  }
  const opens = (pattern.match(/\[/g) ?? []).length;
  const closes = (pattern.match(/]/g) ?? []).length;
  return opens === closes && opens > 0 ? out : null;
}

function parseStix(text: string, now = Date.now()): FeedParse {
  const entries: FeedLine[] = [];
  const refused = new Map<string, number>();
  let bundle: unknown;
  try {
    bundle = JSON.parse(text);
  } catch {
    count(refused, "not JSON");
    return { entries, refused };
  }
  const objects = (bundle as { objects?: unknown } | null)?.objects;
  if (!Array.isArray(objects)) {
    count(refused, "not a STIX bundle (no objects)");
    return { entries, refused };
  }
  for (const object of objects as unknown[]) {
    const o = object as Record<string, unknown> | null;
    if (o?.type !== "indicator") continue;
    if (o.revoked === true) {
      count(refused, "revoked indicator");
      continue;
    }
    const until = typeof o.valid_until === "string" ? Date.parse(o.valid_until) : NaN;
    if (until < now) {
      count(refused, "expired indicator");
      continue;
    }
    if (o.pattern_type !== undefined && o.pattern_type !== "stix") {
      // the feed's value is not the reason: each distinct one would be a reason of its own
      // (a message as long as the feed), and its text would reach the daemon's log
      count(refused, "pattern_type not stix");
      continue;
    }
    const addresses = typeof o.pattern === "string" ? stixPatternAddresses(o.pattern) : null;
    if (!addresses) {
      count(refused, "pattern other than address equalities");
      continue;
    }
    for (const value of addresses)
      entries.push({ value, line: 1, col: 1, ...(Number.isFinite(until) ? { until } : {}) });
  }
  return { entries, refused };
}
