// What `--json` prints: one JSON document per line (or indented, where a command prints one
// document). bigints become numbers when exact, else strings; Sets become arrays and Maps
// objects, so no value is lost or printed as {}.

// JSON.stringify escapes only C0: every other character outside printable ASCII (DEL, C1, bidi
// and zero-width controls, tags, and all else) is written \uXXXX too (an astral one as its
// surrogate pair): the same JSON value, and nothing a terminal acts on. No list of what to escape
// to keep in step with printable(), and the light commands load no policy code for it.
const OUTSIDE_ASCII = /[^\n\u0020-\u007e]/g;
const escaped = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

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
