// A datapath stand-in and the daemon's state for snapshots (what `moat status` and /metrics
// read), and a snapshot as the API's JSON carries it.
import type { SnapshotDatapath, SnapshotState } from "../../src/observe/snapshot.ts";
import type { MoatSnapshot } from "../../src/observe/index.ts";
import type { StatusJson } from "../../src/cli/commands/status.ts";
import { zeroCounters } from "./events.ts";

/** Counters with some packets, three rules (`ssh` and the two defaults), nothing attached. */
export function fakeDatapath(): SnapshotDatapath {
  const counters = zeroCounters();
  counters.pass = { packets: 90n, bytes: 9000n };
  counters.drop = { packets: 10n, bytes: 1000n };
  counters.allowed = { packets: 80n, bytes: 8000n };
  counters.blocked = { packets: 10n, bytes: 1000n };
  counters.detected = { packets: 10n, bytes: 1000n };
  counters.ctCreated = { packets: 4n, bytes: 0n };
  const rule = (index: number, name: string) => ({
    index,
    name,
    packets: 1n,
    bytes: 1n,
    connections: 1n,
  });
  return {
    attachments: [],
    generation: 2,
    counters: () => counters,
    ruleCounters: () => ({
      generation: 2,
      rules: [rule(0, "ssh"), rule(1, "default"), rule(2, "default")],
    }),
    conntrackCapacity: 1024,
    conntrackEntries: () => 0,
  };
}

export const state: SnapshotState = {
  mode: () => "detect" as const,
  policyPath: "/etc/moat/policy.yaml",
  policyHash: () => "ab".repeat(32),
  reloads: { ok: 0, refused: 0 },
};

/** The snapshot as GET /v1/status answers it (bigints as numbers). */
export const statusJson = (snap: MoatSnapshot): StatusJson =>
  JSON.parse(
    JSON.stringify(snap, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v)),
  ) as StatusJson;
