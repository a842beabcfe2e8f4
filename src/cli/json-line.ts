// What `--json` prints: one JSON document per line (or indented, where a command prints one
// document). bigints become numbers when exact, else strings; Sets become arrays and Maps
// objects, so no value is lost or printed as {}.
import { printable } from "../config/index.ts";

// JSON.stringify escapes only C0: the characters printable() escapes (DEL, C1, bidi, zero-width,
// tags...) are written \uXXXX too (an astral one as its surrogate pair), the same JSON value
// (a line break is only the indentation's: JSON.stringify escapes those in strings)
const OUTSIDE_ASCII = /[^\n\u0020-\u007e]/gu;
const escaped = (c: string) =>
  printable(c) === c
    ? c
    : [...Array(c.length).keys()]
        .map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`)
        .join("");

export function jsonLine(value: unknown, indent?: number): string {
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === "bigint")
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : String(v);
      if (v instanceof Set) return [...(v as Set<unknown>)];
      if (v instanceof Map) return Object.fromEntries(v as Map<string, unknown>);
      return v;
    },
    indent,
  ) as string | undefined;
  // undefined (nothing to print) is still a JSON document
  return (text ?? "null").replace(OUTSIDE_ASCII, escaped);
}
