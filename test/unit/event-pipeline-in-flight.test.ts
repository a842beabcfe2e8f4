// A sink that passes batches on to another thread (the history's) is handed the next batch while
// the last is still being written, up to its batchesInFlight: its thread never waits for the
// daemon's between two batches. Events in flight count as queued, so the queue's bound and every
// event's accounting (delivered, dropped, failed) stay exact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import type { EventSink } from "../../src/observe/sink.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { fakeEvent } from "../helpers/events.ts";

const turn = () => new Promise((r) => setImmediate(r));

/** A sink whose writes settle when told to, in the order they came (as a worker answers). */
function relay(batchesInFlight: number) {
  const writes: { batch: MoatEvent[]; settle: (err?: Error) => void }[] = [];
  const sink: EventSink = {
    name: "relay",
    batchesInFlight,
    write: (batch) =>
      new Promise<void>((resolve, reject) =>
        writes.push({ batch: [...batch], settle: (err) => (err ? reject(err) : resolve()) }),
      ),
    close() {},
  };
  return { sink, writes };
}

const stat = (pipeline: EventPipeline) => pipeline.stats().find((s) => s.name === "relay");

test("a sink with batches in flight gets the next batch before the last is written, in order", async () => {
  const pipeline = new EventPipeline();
  const { sink, writes } = relay(3);
  pipeline.add(sink, { maxBatch: 10, capacity: 100 });
  const connections: string[] = [];
  const push = (n: number) => {
    for (let i = 0; i < n; i++) {
      const connection = `c${connections.length}`;
      connections.push(connection);
      pipeline.push(fakeEvent({ connection }));
    }
  };
  push(5);
  await turn();
  push(25);
  await turn();
  await turn();
  // 5, then two full batches of the next 25; the third batch waits for a place
  assert.deepEqual(
    writes.map((w) => w.batch.length),
    [5, 10, 10],
  );
  assert.deepEqual(stat(pipeline), {
    name: "relay",
    delivered: 0,
    dropped: 0,
    failed: 0,
    lost: 0,
    queued: 30,
  });
  // over the bound: what is in flight counts, 100 - 30 places were left
  push(80);
  assert.equal(stat(pipeline)?.dropped, 10);

  writes[0]!.settle();
  await turn();
  await turn();
  assert.equal(writes.length, 4, "a place freed: the next batch goes");
  writes[1]!.settle(new Error("disk full"));
  for (let i = 2; writes.some((w, at) => at >= i); i++) {
    writes[i]!.settle();
    await turn();
    await turn();
  }
  await pipeline.flush();
  const got = writes.flatMap((w) => w.batch.map((e) => e.connection));
  assert.deepEqual(got, connections.slice(0, 100), "every event kept, in order");
  assert.deepEqual(stat(pipeline), {
    name: "relay",
    delivered: 90,
    dropped: 10,
    failed: 1,
    lost: 10,
    queued: 0,
  });
  await pipeline.close();
});

test("removing a sink with batches in flight counts them once they settle", async () => {
  const pipeline = new EventPipeline();
  const { sink, writes } = relay(4);
  pipeline.add(sink, { maxBatch: 10 });
  for (let i = 0; i < 100; i++) pipeline.push(fakeEvent({ connection: i.toString(16) }));
  await turn();
  assert.equal(writes.length, 4);
  const removed = pipeline.remove(sink, 20);
  await removed;
  assert.deepEqual(stat(pipeline), {
    name: "relay",
    delivered: 0,
    dropped: 60,
    failed: 0,
    lost: 0,
    queued: 40,
  });
  for (const w of writes) w.settle();
  await turn();
  assert.deepEqual(stat(pipeline), {
    name: "relay",
    delivered: 40,
    dropped: 60,
    failed: 0,
    lost: 0,
    queued: 0,
  });
});
