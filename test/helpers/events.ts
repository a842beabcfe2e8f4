// Synthetic MoatEvents for observe/API tests.
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { MoatSnapshot } from "../../src/observe/sink.ts";
import type { EventPipeline } from "../../src/observe/pipeline.ts";
import { Counter, type CounterName } from "../../src/datapath/abi.ts";

export function fakeEvent(overrides: Partial<MoatEvent> = {}): MoatEvent {
  return {
    time: new Date().toISOString(),
    type: "blocked",
    mode: "prevent",
    rule: "default",
    direction: "ingress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 22 },
    remote: { ip: "203.0.113.9", port: 51514 },
    interface: "eth0",
    process: null,
    layer7: null,
    connection: "1a",
    reason: "new",
    verdict: "blocked",
    hook: "xdp",
    generation: 1,
    ...overrides,
  };
}

/** Every kernel counter at 0 packets and 0 bytes. */
export function zeroCounters(): Record<CounterName, { packets: bigint; bytes: bigint }> {
  return Object.fromEntries(
    Object.keys(Counter)
      .filter((k) => k !== "max")
      .map((k) => [k, { packets: 0n, bytes: 0n }]),
  ) as Record<CounterName, { packets: bigint; bytes: bigint }>;
}

/** A snapshot with a few known values: drop 7 packets, rule ssh 2 connections. */
export function fakeSnapshot(pipeline: EventPipeline): MoatSnapshot {
  const counters = zeroCounters();
  counters.drop = { packets: 7n, bytes: 420n };
  return {
    mode: "prevent",
    policyPath: "/etc/moat/policy.yaml",
    policyHash: "ab".repeat(32),
    generation: 3,
    reloads: { ok: 2, refused: 1 },
    attached: [{ interface: "eth0", hook: "xdp", mode: "native" }],
    counters,
    rules: [{ name: "ssh", packets: 10n, bytes: 1000n, connections: 2n }],
    events: { ...pipeline.events },
    ringLost: 0n,
    conntrack: { entries: 5, capacity: 65536 },
    sinks: pipeline.stats(),
  };
}
