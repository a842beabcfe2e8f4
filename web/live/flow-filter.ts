// The live view's filter: words like `type:blocked rule:ssh !process:curl port:22
// remote:10.0.0.0/8 name:github.com container:web`, every one must hold; `!` (or `-`) before a
// word negates it; a bare word matches any of the row's texts. Pure: the unit tests run it too.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";

const KEYS = [
  "type",
  "verdict",
  "rule",
  "process",
  "container",
  "remote",
  "name",
  "port",
  "proto",
] as const;
type Key = (typeof KEYS)[number] | "any";

export interface FilterTerm {
  key: Key;
  value: string;
  negate: boolean;
}

export class FlowFilterError extends Error {}

export function parseFlowFilter(text: string): FilterTerm[] {
  const terms: FilterTerm[] = [];
  for (const word of text.trim().split(/\s+/)) {
    if (!word) continue;
    const negate = word.startsWith("!") || (word.startsWith("-") && word.length > 1);
    const body = negate ? word.slice(1) : word;
    const colon = body.indexOf(":");
    const key = colon > 0 ? body.slice(0, colon).toLowerCase() : "any";
    const value = (colon > 0 ? body.slice(colon + 1) : body).toLowerCase();
    if (key !== "any" && !(KEYS as readonly string[]).includes(key))
      throw new FlowFilterError(`unknown filter '${key}:' (filters: ${KEYS.join(", ")})`);
    if (!value) throw new FlowFilterError(`'${word}' gives no value`);
    if (key === "port" && !/^\d{1,5}(-\d{1,5})?$/.test(value))
      throw new FlowFilterError(`port '${value}' is not a port or a range A-B`);
    terms.push({ key: key as Key, value, negate });
  }
  return terms;
}

export function matchesFlow(row: FlowRow, terms: readonly FilterTerm[]): boolean {
  for (const t of terms) if (matchTerm(row, t) === t.negate) return false;
  return true;
}

function matchTerm(row: FlowRow, t: FilterTerm): boolean {
  const v = t.value;
  const has = (text: string | null | undefined) => (text ?? "").toLowerCase().includes(v);
  switch (t.key) {
    case "type":
      return (row.types as Record<string, number | undefined>)[v] !== undefined;
    case "verdict":
      return row.verdict === v;
    case "rule":
      return row.rule.toLowerCase() === v;
    case "process":
      return has(row.process);
    case "container":
      return has(row.container);
    case "remote":
      return inRemote(row.remote, v);
    case "name":
      return row.names.some((n) => has(n)) || has(row.l7name);
    case "port": {
      const [a, b] = v.split("-").map(Number) as [number, number | undefined];
      return row.port >= a && row.port <= (b ?? a);
    }
    case "proto":
      return row.protocol === v;
    case "any":
      return [row.identity, row.remote, row.rule, row.verdict, row.l7name, ...row.names].some(has);
  }
}

/** A CIDR (IPv4) or an address prefix; IPv6 by text prefix. */
function inRemote(ip: string, v: string): boolean {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(v);
  if (!m) return ip.toLowerCase().startsWith(v);
  const bits = Number(m[2]);
  const a = v4(ip);
  const b = v4(m[1] ?? "");
  if (a === null || b === null || bits > 32) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

function v4(ip: string): number | null {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) return null;
  return (
    (((parts[0] ?? 0) << 24) |
      ((parts[1] ?? 0) << 16) |
      ((parts[2] ?? 0) << 8) |
      (parts[3] ?? 0)) >>>
    0
  );
}
