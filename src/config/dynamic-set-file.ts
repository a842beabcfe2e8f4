// The file a dynamic set's entries live in (the daemon's state, NAME.dynamic): one entry a line,
// with its expiry as a comment the set-file reader ignores ("203.0.113.9 # expires 1764745200").
// Pure: the daemon writes it, the policy loader reads it (skipping entries already expired).

export interface DynamicEntry {
  /** As written by `moat set add` (an address or a CIDR). */
  entry: string;
  /** When it expires, ms since the epoch; null: never. */
  expires: number | null;
}

/**
 * The longest entry a dynamic set holds: a range of two IPv6 addresses written in full with an
 * embedded IPv4 ("0000:0000:0000:0000:0000:ffff:255.255.255.255", 45 characters) and its dash.
 */
export const MAX_DYNAMIC_ENTRY_CHARS = 2 * 45 + 1;

/** A store file's longest line: that entry, " # expires ", an expiry of 12 digits, the newline. */
export const MAX_DYNAMIC_LINE_BYTES = MAX_DYNAMIC_ENTRY_CHARS + " # expires ".length + 12 + 1;

const LINE = /^\s*(\S+)\s*(?:#\s*expires\s+(\d+))?\s*$/;

/** The longest timeout an entry takes: its expiry is a date, written in whole digits. */
export const MAX_ENTRY_TIMEOUT_SECONDS = 100 * 365.25 * 86_400;

/** Why `seconds` is too long a timeout for an entry; undefined when it is not. */
export function timeoutTooLong(seconds: number): string | undefined {
  return seconds > MAX_ENTRY_TIMEOUT_SECONDS
    ? `a timeout of ${seconds} s is over the longest, 100 years (${MAX_ENTRY_TIMEOUT_SECONDS} s)`
    : undefined;
}

export function parseDynamicSetFile(text: string): DynamicEntry[] {
  const out: DynamicEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = LINE.exec(line);
    if (!m?.[1] || m[1].startsWith("#")) continue;
    out.push({ entry: m[1], expires: m[2] ? Number(m[2]) * 1000 : null });
  }
  return out;
}

/**
 * The file's text. An entry is written trimmed, and one that is still not a single word (a line
 * break or a blank inside) is left out: it would read back as another entry, or without its
 * expiry (never expiring); so is one longer than any address entry (the file's size is bounded
 * by the longest entry). Entries come checked as addresses: this never drops a real one.
 */
export function formatDynamicSetFile(entries: readonly DynamicEntry[]): string {
  let text = "";
  for (const e of entries) {
    const entry = e.entry.trim();
    if (entry === "" || entry.length > MAX_DYNAMIC_ENTRY_CHARS || /\s/.test(entry)) continue;
    text +=
      e.expires === null ? `${entry}\n` : `${entry} # expires ${Math.ceil(e.expires / 1000)}\n`;
  }
  return text;
}

/** The entries still live at `now`. */
export function liveEntries(entries: readonly DynamicEntry[], now: number): DynamicEntry[] {
  return entries.filter((e) => e.expires === null || e.expires > now);
}
