// Fixture tables for the kernel classifier: {description, hook, packet, verdict, event,
// counters}, each run through BPF_PROG_TEST_RUN on a fresh connection table.
import assert from "node:assert/strict";
import type { CounterName } from "../../src/datapath/abi.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { KernelLab, type HookName, type Verdict } from "./kernel-lab.ts";
import type { PacketSpec } from "./packets.ts";

export interface Fixture {
  description: string;
  hook: HookName;
  packet: PacketSpec | Buffer;
  verdict: Verdict;
  /**
   * The one event expected, as eventLine() writes it, or null for none. Omitted: not checked.
   * e.g. "blocked ingress tcp 10.1.99.7:40000 -> 10.0.0.1:22 by default (prevent)"
   */
  event?: string | null;
  /** Packet-count differences of these counters. */
  counters?: Partial<Record<CounterName, number>>;
}

const ep = (p: { ip: string; port: number }) =>
  p.ip.includes(":") ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`;

/** An event in one line: type, direction, protocol, initiator -> responder, rule, mode. */
export function eventLine(e: MoatEvent): string {
  const [from, to] = e.direction === "ingress" ? [e.remote, e.local] : [e.local, e.remote];
  const icmp = e.icmp ? ` type ${e.icmp.type} code ${e.icmp.code}` : "";
  return `${e.type} ${e.direction} ${e.protocol}${icmp} ${ep(from)} -> ${ep(to)} by ${e.rule} (${e.mode})`;
}

export function runFixture(lab: KernelLab, f: Fixture): void {
  lab.dp.clearConntrack();
  lab.events();
  const before = lab.counters();
  const r = lab.run(f.hook, f.packet);
  assert.equal(r.verdict, f.verdict, `${f.description}: verdict`);
  const events = lab.events().map(eventLine);
  if (f.event === null) assert.deepEqual(events, [], `${f.description}: no event`);
  else if (f.event !== undefined) assert.deepEqual(events, [f.event], `${f.description}: event`);
  if (f.counters) {
    const names = Object.keys(f.counters) as CounterName[];
    assert.deepEqual(
      KernelLab.delta(before, lab.counters(), names),
      f.counters,
      `${f.description}: counters`,
    );
  }
}
