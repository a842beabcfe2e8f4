// The kernel's clock in user space: an event's kernel time becomes the wall-clock time it
// happened, following steps of the wall clock (NTP, a resume from suspend) while reading the
// clocks at most once a second of events; and the kernel's monotonic clock is this process's
// less its time namespace's offset.
import { test } from "node:test";
import assert from "node:assert/strict";
import { event as eventCodec, EventType, Hook, Mode } from "../../src/datapath/abi.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { GenerationRecord } from "../../src/datapath/generations.ts";
import { KernelWallClock, monotonicOffsetNs } from "../../src/datapath/kernel-clock.ts";
import { startEventPath } from "../../src/daemon/event-path.ts";

const T0 = Date.parse("2026-12-06T10:00:00.000Z");
const HOUR = 3_600_000;

const blocked = (tsMs: number) =>
  eventCodec.encode({
    local: Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]),
    remote: Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2]),
    local_port: 80,
    remote_port: 40000,
    ts_ns: BigInt(tsMs) * 1_000_000n,
    type: EventType.blocked,
    verdict: EventType.blocked,
    hook: Hook.tcIngress,
    family: 4,
    protocol: 6,
    direction: 0,
    mode: Mode.prevent,
  });

/** A wall clock and a kernel clock the test moves, and how often the wall clock was read. */
function clocks() {
  const c = { wallMs: T0 + 5_000, kernelMs: 5_000, wallReads: 0 };
  const clock = new KernelWallClock(
    () => {
      c.wallReads++;
      return c.wallMs;
    },
    () => c.kernelMs,
  );
  const pass = (ms: number) => {
    c.wallMs += ms;
    c.kernelMs += ms;
  };
  return { c, clock, pass };
}

function eventPath(clock: KernelWallClock) {
  let deliver: (record: Buffer) => void = () => assert.fail("not subscribed");
  const events: MoatEvent[] = [];
  const path = startEventPath({
    source: {
      contents: new GenerationRecord(),
      subscribe: (onRecord) => (deliver = onRecord),
      counters: () => ({}),
    },
    push: (e) => events.push(e),
    process: () => assert.fail("no owner"),
    interfaces: () => [],
    destroy: () => null,
    log: () => {},
    clock,
  });
  return { deliver: (r: Buffer) => deliver(r), events, path };
}

test("an event after the wall clock stepped an hour forward has the stepped time", (t) => {
  const { c, clock, pass } = clocks();
  const p = eventPath(clock);
  t.after(() => p.path.close());

  p.deliver(blocked(c.kernelMs));
  assert.equal(p.events[0]?.time, new Date(T0 + 5_000).toISOString());

  c.wallMs += HOUR; // the step
  pass(30_000);
  p.deliver(blocked(c.kernelMs));
  assert.equal(
    p.events[1]?.time,
    new Date(T0 + 35_000 + HOUR).toISOString(),
    "the time it happened on the stepped wall clock",
  );

  c.wallMs -= 2 * HOUR; // and back, past where it was
  pass(30_000);
  p.deliver(blocked(c.kernelMs - 250));
  assert.equal(p.events[2]?.time, new Date(T0 + 65_000 - HOUR - 250).toISOString());
});

test("a burst of events within a second reads the wall clock once", () => {
  const { c, clock, pass } = clocks();
  const p = eventPath(clock);
  pass(5_000);
  const before = c.wallReads;
  for (let i = 0; i < 1000; i++) p.deliver(blocked(c.kernelMs + (i % 900)));
  p.path.close();
  assert.equal(c.wallReads - before, 1);
  assert.equal(p.events.length, 1000);
  assert.equal(p.events[999]?.time, new Date(T0 + 10_000 + 99).toISOString());
});

test("a time namespace's monotonic offset is read from its timens_offsets", () => {
  const offsets = "monotonic           3600         0\nboottime            3600         0\n";
  assert.equal(monotonicOffsetNs(offsets), 3_600_000_000_000n);
  assert.equal(monotonicOffsetNs("boottime 7 0\nmonotonic -2 500000000\n"), -1_500_000_000n);
  assert.equal(monotonicOffsetNs("boottime 7 0\n"), 0n, "no monotonic line");
  assert.equal(monotonicOffsetNs(null), 0n, "no file: no time namespaces");
});
