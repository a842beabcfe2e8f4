// Sizes like "500MB", "1GB", "64KiB" (or a bare number of bytes) -> bytes. Pure.

import { fail, ok, type Parsed } from "./parsed.ts";

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

export function parseSize(value: number | string): Parsed<number> {
  if (typeof value === "number")
    return Number.isInteger(value) && value > 0
      ? ok(value)
      : fail(`${value} is not a positive whole number of bytes`);
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = UNITS[(m?.[2] || "b").toLowerCase()];
  if (!m || unit === undefined)
    return fail(`'${value}' is not a size (write e.g. 500MB, 2GB or 64MiB)`);
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes > 0 ? ok(bytes) : fail(`'${value}' is zero; a size must be positive`);
}
