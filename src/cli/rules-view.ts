// The `moat rules` table: pure (rows in, lines out), so it is tested without a daemon.
import { printable } from "../config/index.ts";
import type { RuleView } from "../api/index.ts";

/** GET /v1/rules: the kernel's counters of the live generation (bigints arrive as numbers). */
export interface RuleCounts {
  generation: number;
  rules: { name: string; packets: number; bytes: number; connections: number }[];
}

/** A rule's counters and, when the policy names it, what it does. */
export type RuleRow = RuleCounts["rules"][number] & Partial<RuleView>;

const VERDICTS = ["allowed", "blocked", "detected"] as const;

export function rulesTable(generation: number, rows: readonly RuleRow[]): string[] {
  const header = ["RULE", "ACTION", "VERDICT", "CONNECTIONS", "PACKETS", "BYTES", "LINE"];
  const cells = rows.map((r) => [
    printable(r.name),
    r.action ?? "-",
    r.verdict ?? "-",
    String(r.connections),
    String(r.packets),
    String(r.bytes),
    r.line === undefined ? "" : String(r.line),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) =>
    c
      .map((cell, i) =>
        i >= 3 && i <= 5 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0),
      )
      .join("  ")
      .trimEnd();
  const hits = VERDICTS.map(
    (v) => `${rows.filter((r) => r.verdict === v).reduce((n, r) => n + r.connections, 0)} ${v}`,
  );
  return [
    line(header),
    ...cells.map(line),
    `generation ${generation}: connections by verdict ${hits.join(", ")} (counted since this generation was applied)`,
  ];
}
