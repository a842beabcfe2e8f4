// Durations like "8h", "30m", "90s", "1d", "1h30m" (or a bare number of seconds) -> seconds. Pure.

import { fail, ok, type Parsed } from "./parsed.ts";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export function parseDuration(value: number | string): Parsed<number> {
  if (typeof value === "number") {
    return Number.isInteger(value) && value > 0
      ? ok(value)
      : fail(`${value} is not a positive whole number of seconds`);
  }
  const text = value.trim();
  if (!/^(\d+[smhd])+$/.test(text))
    return fail(`'${value}' is not a duration (write e.g. 90s, 30m, 8h, 1d or 1h30m)`);
  let seconds = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhd])/g))
    seconds += Number(n) * (UNIT_SECONDS[unit ?? "s"] ?? 1);
  return seconds > 0 ? ok(seconds) : fail(`'${value}' is zero; a duration must be positive`);
}

export function formatDuration(seconds: number): string {
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join("") || "0s";
}
