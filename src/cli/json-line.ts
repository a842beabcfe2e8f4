// What `--json` prints: one JSON document per line. bigints become numbers when exact, else
// strings; Sets become arrays and Maps objects, so no value is lost or printed as {}.
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : String(v);
    if (v instanceof Set) return [...(v as Set<unknown>)];
    if (v instanceof Map) return Object.fromEntries(v as Map<string, unknown>);
    return v;
  });
}
