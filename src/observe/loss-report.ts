// Losses are never silent: what the kernel could not report or track since the last look.
import type { CounterName } from "../datapath/abi.ts";

export type PacketCounts = Partial<Record<CounterName, { packets: bigint }>>;

const WATCHED: [CounterName, string][] = [
  ["eventLost", "events lost (ring buffer full)"],
  ["ctFull", "connections judged without tracking (conntrack table full)"],
  ["namesFull", "DNS answers whose addresses bound no names (name bindings full)"],
];

/** One warning line for what grew between two counter snapshots, or null. */
export function lossReport(before: PacketCounts, after: PacketCounts): string | null {
  const parts: string[] = [];
  for (const [name, words] of WATCHED) {
    const grown = (after[name]?.packets ?? 0n) - (before[name]?.packets ?? 0n);
    if (grown > 0n) parts.push(`${grown} ${words}`);
  }
  return parts.length ? `warning: ${parts.join("; ")}` : null;
}
