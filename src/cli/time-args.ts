// Time arguments of the CLI: durations ("60s", "10m", "2h", "1d", "500ms") and points in time
// ("10m" = ten minutes ago, an ISO 8601 time or date in local time unless it says its offset, or
// milliseconds since the epoch). Every command reads its --since/--until here.
import { UsageError } from "./command.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "10m", "1h30m" -> milliseconds; a bare number is seconds. Throws a UsageError. */
export function parseDuration(text: string, option: string): number {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const parts = /^(?:\d+(?:ms|s|m|h|d))+$/.test(text) ? text.match(/\d+(?:ms|s|m|h|d)/g) : null;
  if (!parts)
    throw new UsageError(`${option} '${text}' is not a duration (e.g. 30s, 10m, 2h, 1d, 1h30m)`);
  let ms = 0;
  for (const part of parts) {
    const [, n = "0", unit = "s"] = /^(\d+)(ms|s|m|h|d)$/.exec(part) ?? [];
    ms += Number(n) * (UNIT_MS[unit] ?? 1000);
  }
  return ms;
}

/** The usage line (and its indented continuations) that says what TIME may be. */
export const TIME_USAGE = `TIME: a duration ago (30s, 10m, 2h, 1d), an ISO 8601 date or time (2026-12-03,
  2026-12-03T10:00, 2026-12-03T10:00:00Z) or milliseconds since the epoch; a date or time
  without an offset (Z, +01:00) is local time.`;

/** The latest time a Date holds, in ms since the epoch. */
const MAX_TIME_MS = 8.64e15;

/** What a point in time may be, for the error that refuses one. */
const TIME_FORMS =
  "give a duration ago (10m, 2h, 1d), an ISO 8601 date or time (2026-12-03, " +
  "2026-12-03T10:00, 2026-12-03T10:00:00Z; local time without an offset) or milliseconds " +
  "since the epoch";

/**
 * A point in time as milliseconds since the epoch: a duration ago ("10m"), an ISO 8601 date or
 * time ("2026-12-03", "2026-12-03T10:00", "2026-12-03 10:00:00", "2026-12-03T10:00:00+01:00"),
 * or milliseconds since the epoch (all digits). A date or time without an offset is local time
 * (TZ), as journalctl reads --since. Throws a UsageError.
 */
export function parseTimePoint(text: string, option: string, now = Date.now()): number {
  let ms: number | undefined;
  if (/^\d+$/.test(text)) ms = Number(text);
  else if (/^(?:\d+(?:ms|s|m|h|d))+$/.test(text)) ms = now - parseDuration(text, option);
  else ms = isoTime(text);
  if (ms === undefined || ms > MAX_TIME_MS)
    throw new UsageError(`${option} '${text}' is not a time: ${TIME_FORMS}`);
  if (ms < 0) throw new UsageError(`${option} '${text}' is before 1970`);
  return ms;
}

/** YYYY-MM-DD, then optionally hh:mm[:ss[.fff]] after a T or a space, and an offset. */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** Year, month (from 0), day, hours, minutes, seconds. */
type Fields = [number, number, number, number, number, number];

/** An ISO 8601 date or time -> ms since the epoch; undefined when it names no real time. */
function isoTime(text: string): number | undefined {
  const m = ISO_TIME.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map((f) => Number(f ?? 0)) as Fields;
  const fraction = Number((m[7] ?? "").padEnd(3, "0").slice(0, 3));
  const fields: Fields = [y, mo - 1, d, h, mi, s];
  // the fields read as UTC must come back as they are: no 30 February, no 24:00
  const utc = Date.UTC(...fields, fraction);
  const back = new Date(utc);
  const same = [
    back.getUTCFullYear(),
    back.getUTCMonth(),
    back.getUTCDate(),
    back.getUTCHours(),
    back.getUTCMinutes(),
    back.getUTCSeconds(),
  ].every((v, i) => v === fields[i]);
  if (!same) return undefined;
  const offset = m[8];
  if (offset === undefined) return new Date(...fields, fraction).getTime();
  const offsetMs = offsetOf(offset);
  return offsetMs === undefined ? undefined : utc - offsetMs;
}

/** "Z", "+01:00", "-0530", "+01" -> ms east of UTC; undefined past 23:59. */
function offsetOf(text: string): number | undefined {
  if (/^z$/i.test(text)) return 0;
  const [, sign = "+", h = "0", mi = "0"] = /^([+-])(\d{2}):?(\d{2})?$/.exec(text) ?? [];
  if (Number(h) > 23 || Number(mi) > 59) return undefined;
  return (sign === "-" ? -1 : 1) * (Number(h) * 60 + Number(mi)) * 60_000;
}
