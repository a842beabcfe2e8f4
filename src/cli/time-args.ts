// Time arguments of the CLI: durations ("60s", "10m", "2h", "1d", "500ms") and points in time
// ("10m" = ten minutes ago, an ISO 8601 time or date, or milliseconds since the epoch).
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

/**
 * A point in time as milliseconds since the epoch: a duration ago ("10m"), an ISO 8601 time or
 * date ("2026-12-03T10:00:00Z", "2026-12-03"), or milliseconds since the epoch (all digits).
 */
export function parseTimePoint(text: string, option: string, now = Date.now()): number {
  if (/^\d+$/.test(text)) return Number(text);
  if (/^(?:\d+(?:ms|s|m|h|d))+$/.test(text)) return now - parseDuration(text, option);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms))
    throw new UsageError(
      `${option} '${text}' is not a time: give a duration ago (10m, 2h, 1d), an ISO 8601 time ` +
        "(2026-12-03T10:00:00Z) or milliseconds since the epoch",
    );
  return ms;
}
