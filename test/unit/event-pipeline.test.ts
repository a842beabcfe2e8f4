// The pipeline fans events out to every sink; a stalled sink loses events in its own queue,
// counted exactly, while the others get everything (pushing never waits for a sink).
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import type { EventSink } from "../../src/observe/sink.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { fakeEvent } from "../helpers/events.ts";

const turn = () => new Promise((r) => setImmediate(r));

function collector(name: string): EventSink & { got: MoatEvent[] } {
  const got: MoatEvent[] = [];
  return { name, got, write: (batch) => void got.push(...batch), close() {} };
}

test("a stalled sink does not slow the others; its drops are counted exactly", async () => {
  const pipeline = new EventPipeline();
  const fast = collector("fast");
  let stalledWrites = 0;
  let release: () => void = () => {};
  const stalled: EventSink = {
    name: "stalled",
    write() {
      stalledWrites++;
      return new Promise<void>((resolve) => (release = resolve)); // never settles until released
    },
    close() {},
  };
  const capacity = 100;
  pipeline.add(fast);
  pipeline.add(stalled, { capacity, maxBatch: 10 });

  pipeline.push(fakeEvent({ connection: "first" }));
  await turn(); // the stalled sink took one batch (1 event) and hangs in it
  const total = 50_000;
  for (let i = 0; i < total; i++) pipeline.push(fakeEvent({ connection: i.toString(16) }));
  await turn();
  await turn();

  assert.equal(fast.got.length, total + 1, "the fast sink got every event");
  assert.equal(stalledWrites, 1, "the stalled sink was not called again while stuck");
  const stats = new Map(pipeline.stats().map((s) => [s.name, s]));
  assert.deepEqual(stats.get("fast"), {
    name: "fast",
    delivered: total + 1,
    dropped: 0,
    failed: 0,
    lost: 0,
    queued: 0,
  });
  assert.deepEqual(stats.get("stalled"), {
    name: "stalled",
    delivered: 0,
    // the batch in the sink's hands still counts as queued: capacity - 1 places were left
    dropped: total - (capacity - 1),
    failed: 0,
    lost: 0,
    queued: capacity,
  });
  assert.deepEqual(pipeline.events, {
    allowed: 0,
    blocked: total + 1,
    detected: 0,
    closed: 0,
    dns: 0,
    anomaly: 0,
    exe_changed: 0,
  });

  release();
  await pipeline.close(100);
});

test("a sink that throws is counted as failed and keeps receiving later events", async () => {
  const pipeline = new EventPipeline();
  let calls = 0;
  const got: string[] = [];
  pipeline.add({
    name: "flaky",
    write(batch) {
      calls++;
      if (calls === 1) throw new Error("disk full");
      for (const e of batch) got.push(e.connection ?? "");
    },
    close() {},
  });
  pipeline.push(fakeEvent({ connection: "a" }));
  await pipeline.flush();
  pipeline.push(fakeEvent({ connection: "b" }));
  await pipeline.flush();
  assert.deepEqual(got, ["b"]);
  assert.deepEqual(pipeline.stats()[0], {
    name: "flaky",
    delivered: 1,
    dropped: 0,
    failed: 1,
    lost: 1,
    queued: 0,
  });
  await pipeline.close();
});

test("a removed sink is closed and its counts stay in the stats", async () => {
  const pipeline = new EventPipeline();
  let closed = false;
  const sink: EventSink = { name: "otel", write() {}, close: () => void (closed = true) };
  pipeline.add(sink);
  pipeline.push(fakeEvent());
  await pipeline.remove(sink);
  pipeline.push(fakeEvent());
  assert.equal(closed, true);
  assert.deepEqual(pipeline.stats(), [
    { name: "otel", delivered: 1, dropped: 0, failed: 0, lost: 0, queued: 0 },
  ]);
});

test("a sink that lingers gets the events of several turns in one write, none lost", async () => {
  const pipeline = new EventPipeline();
  const writes: number[] = [];
  const lingering: EventSink = {
    name: "lingering",
    write: (batch) => void writes.push(batch.length),
    close() {},
  };
  const eager = collector("eager");
  pipeline.add(lingering, { lingerMs: 50 });
  pipeline.add(eager);
  for (let i = 0; i < 5; i++) {
    pipeline.push(fakeEvent({ connection: `c${i}` }));
    await turn();
  }
  assert.equal(eager.got.length, 5, "a sink that does not linger got each turn's event");
  assert.deepEqual(writes, [], "the lingering sink still waits");
  await pipeline.flush();
  assert.deepEqual(writes, [5], "one write of the five");
});

test("removing a sink counts what it still held as dropped, and the batch it was writing once it settles", async () => {
  const pipeline = new EventPipeline();
  let release: () => void = () => {};
  const hung: EventSink = {
    name: "hung",
    write: () => new Promise<void>((resolve) => (release = resolve)), // a receiver that does not answer
    close: () => release(),
  };
  pipeline.add(hung, { maxBatch: 100 });
  for (let i = 0; i < 1000; i++) pipeline.push(fakeEvent({ connection: i.toString(16) }));
  await turn(); // the first batch (100) is being written
  await pipeline.remove(hung, 50);
  await turn();
  assert.deepEqual(pipeline.stats(), [
    { name: "hung", delivered: 100, dropped: 900, failed: 0, lost: 0, queued: 0 },
  ]);

  // a batch that settles only after the removal: queued until then, then counted
  let settle: (ok: boolean) => void = () => {};
  const late: EventSink = {
    name: "late",
    write: () =>
      new Promise<void>(
        (resolve, reject) => (settle = (ok) => (ok ? resolve() : reject(new Error("gone")))),
      ),
    close() {},
  };
  pipeline.add(late, { maxBatch: 10 });
  for (let i = 0; i < 30; i++) pipeline.push(fakeEvent({ connection: i.toString(16) }));
  await turn();
  await pipeline.remove(late, 20);
  const held = pipeline.stats().find((s) => s.name === "late");
  assert.deepEqual(held, {
    name: "late",
    delivered: 0,
    dropped: 20,
    failed: 0,
    lost: 0,
    queued: 10,
  });
  settle(false);
  await turn();
  assert.deepEqual(
    pipeline.stats().find((s) => s.name === "late"),
    { name: "late", delivered: 0, dropped: 20, failed: 1, lost: 10, queued: 0 },
  );
});
