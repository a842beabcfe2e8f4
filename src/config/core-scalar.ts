// What a plain scalar means where the lean reader (lean-source.ts) reads it: YAML 1.2's core schema
// for null, booleans and numbers (as the yaml library reads them), a string otherwise; and which
// mapping keys it gives up on because YAML reads them as something other than a string.

import { CORE_NUMBER } from "./fast-source.ts";

/** The number a CORE_NUMBER text stands for. */
export function coreNumber(text: string): number {
  if (text.startsWith("0o")) return parseInt(text.slice(2), 8);
  if (text.startsWith("0x")) return parseInt(text.slice(2), 16);
  const inf = /^([-+]?)\.inf$/i.exec(text);
  if (inf) return inf[1] === "-" ? -Infinity : Infinity;
  if (/^\.nan$/i.test(text)) return NaN;
  return Number(text);
}

/** The value of a plain (unquoted, untagged) scalar: null, a boolean, a number or the text. */
export function plainScalar(text: string): string | number | boolean | null {
  const c = text.charCodeAt(0);
  if (c >= 0x30 && c <= 0x39) {
    // most numbers in a policy are short runs of digits: their value without a regular expression
    const n = text.length;
    if (n <= 15) {
      let value = c - 0x30;
      let i = 1;
      for (; i < n; i++) {
        const d = text.charCodeAt(i) - 0x30;
        if (d < 0 || d > 9) break;
        value = value * 10 + d;
      }
      if (i === n) return value;
    }
    // after a number's first digits come only . e E o x, and one dot at most (an address, a
    // date: a string)
    const d = digitsEnd(text);
    const after = text.charCodeAt(d);
    if (after === 0x2e ? text.indexOf(".", d + 1) >= 0 : d < n && !NUMBER_GOES_ON[after])
      return text;
    return CORE_NUMBER.test(text) ? coreNumber(text) : text;
  }
  if (c === 0x2b || c === 0x2d || c === 0x2e)
    return CORE_NUMBER.test(text) ? coreNumber(text) : text;
  switch (text) {
    case "~":
    case "null":
    case "Null":
    case "NULL":
      return null;
    case "true":
    case "True":
    case "TRUE":
      return true;
    case "false":
    case "False":
    case "FALSE":
      return false;
    default:
      return text;
  }
}

/** What may follow a number's first digits (by character code): e E o x. */
const NUMBER_GOES_ON: Record<number, boolean> = { 0x65: true, 0x45: true, 0x6f: true, 0x78: true };

/** Where the digits `text` starts with end. */
function digitsEnd(text: string): number {
  let i = 0;
  for (let c = text.charCodeAt(0); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i));
  return i;
}

/** Keys the yaml library would not read as the same string (YAML reads them as null, a boolean, a number). */
const SCALAR_KEY = /^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|-?Infinity|NaN|)$/;

/**
 * Whether the lean reader keeps a mapping key as it is: not empty, not one YAML reads as a number,
 * boolean or null (quoted or not: the lean reader cannot tell), not one js-yaml treats apart.
 */
export function stringKey(key: string): boolean {
  if (key === "" || key === "__proto__" || key === "<<") return false;
  const c = key.charCodeAt(0);
  // a digit, + - . (a number), ~ or the first letter of null, true, false (any case), Infinity
  if (
    c <= 0x39 ||
    c === 0x49 ||
    c === 0x7e ||
    c === 0x4e ||
    c === 0x54 ||
    c === 0x46 ||
    c === 0x6e ||
    c === 0x74 ||
    c === 0x66
  )
    return !CORE_NUMBER.test(key) && !SCALAR_KEY.test(key);
  return true;
}
