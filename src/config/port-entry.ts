// One port list entry as written (22, "8000-8999", "set:web-ports") -> its meaning. Pure.

import { fail, ok, type Parsed } from "./parsed.ts";

export type PortTarget = { kind: "range"; lo: number; hi: number } | { kind: "set"; set: string };

const MAX_PORT = 65535;

function parsePort(text: string, whole: string): Parsed<number> {
  if (!/^\d{1,5}$/.test(text))
    return fail(`'${whole}' is not a port, "a-b" port range or set:NAME`);
  const n = Number(text);
  if (n > MAX_PORT) return fail(`port ${n} is out of range 0-${MAX_PORT}`);
  return ok(n);
}

export function parsePortEntry(entry: number | string): Parsed<PortTarget> {
  if (typeof entry === "number") {
    if (!Number.isInteger(entry) || entry < 0 || entry > MAX_PORT)
      return fail(`port ${entry} is out of range 0-${MAX_PORT}`);
    return ok({ kind: "range", lo: entry, hi: entry });
  }
  const text = entry.trim();
  if (text.startsWith("set:")) return ok({ kind: "set", set: text.slice(4) });
  if (text.startsWith("!"))
    return fail(`'${text}': ports cannot be negated; list the ranges to match instead`);
  const dash = text.indexOf("-");
  if (dash < 0) {
    const port = parsePort(text, text);
    return port.ok ? ok({ kind: "range", lo: port.value, hi: port.value }) : port;
  }
  const lo = parsePort(text.slice(0, dash).trim(), text);
  if (!lo.ok) return lo;
  const hi = parsePort(text.slice(dash + 1).trim(), text);
  if (!hi.ok) return hi;
  if (lo.value > hi.value) return fail(`'${text}' is an empty range (${lo.value} > ${hi.value})`);
  return ok({ kind: "range", lo: lo.value, hi: hi.value });
}

/**
 * A port or port range written plainly as a string ("22", "8000-8999"), the string entry most lists
 * hold, read with numbers: lo * 65536 + hi. -1 for anything else (spaces, sets, mistakes), which
 * parsePortEntry then reads (and words the error of); what this reads, it reads the same.
 */
export function plainPortRange(text: string): number {
  let lo = -1;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      if (++digits > 5) return -1;
    } else if (c === 45 /* - */ && lo < 0 && digits > 0) {
      lo = value;
      value = 0;
      digits = 0;
    } else return -1;
  }
  if (digits === 0 || value > MAX_PORT) return -1;
  if (lo < 0) return value * 65536 + value;
  return lo > value ? -1 : lo * 65536 + value;
}

/** Whether a set entry reads as a port (so a set of them is a port set). */
export function looksLikePort(entry: number | string): boolean {
  return typeof entry === "number" || /^\s*\d+\s*(-\s*\d+\s*)?$/.test(entry);
}
