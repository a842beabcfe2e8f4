// MoatEvent and MoatSnapshot values for sink tests, built the way the decoder and daemon would.
import { Counter, type CounterName } from "../../src/datapath/abi.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { MoatSnapshot } from "../../src/observe/sink.ts";

const T0 = Date.parse("2026-11-22T10:00:00.000Z");

/** An egress TCP connection this host opened to 198.51.100.7:443, allowed by rule "web". */
export function moatEvent(over: Partial<MoatEvent> = {}, atMs = 0): MoatEvent {
  return {
    time: new Date(T0 + atMs).toISOString(),
    type: "allowed",
    mode: "prevent",
    rule: "web",
    direction: "egress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 40112 },
    remote: { ip: "198.51.100.7", port: 443 },
    interface: "eth0",
    process: null,
    layer7: null,
    connection: "1a",
    reason: "new",
    verdict: "allowed",
    hook: "tc",
    generation: 1,
    ...over,
  };
}

/** The close of `opened`, `durationMs` after it, with its totals. */
export function closeOf(
  opened: MoatEvent,
  durationMs: number,
  reason: "fin" | "rst" = "fin",
): MoatEvent {
  return {
    ...opened,
    time: new Date(Date.parse(opened.time) + durationMs).toISOString(),
    type: "closed",
    reason,
    stats: { packets: 12, bytes: 3456, durationMs },
  };
}

export function snapshot(over: Partial<MoatSnapshot> = {}): MoatSnapshot {
  const counters = Object.fromEntries(
    Object.keys(Counter)
      .filter((k) => k !== "max")
      .map((k) => [k, { packets: 0n, bytes: 0n }]),
  ) as Record<CounterName, { packets: bigint; bytes: bigint }>;
  return {
    mode: "prevent",
    policyPath: "/etc/moat/policy.yaml",
    policyHash: "0".repeat(64),
    generation: 1,
    reloads: { ok: 0, refused: 0 },
    attached: [],
    counters,
    rules: [],
    events: { allowed: 0, blocked: 0, detected: 0, closed: 0, dns: 0, anomaly: 0, exe_changed: 0 },
    ringLost: 0n,
    conntrack: { entries: 0, capacity: 65536 },
    sinks: [],
    ...over,
  };
}
