// The history store in its worker thread: what the daemon uses. Inserts and queries answer in
// order, a closed store reopens with its events, and a store that cannot open says why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { QUERY_WINDOW_IDS } from "../../src/observe/history/store.ts";
import { fakeEvent } from "../helpers/events.ts";

test("events written through the worker are queried back, and kept across a reopen", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hworker-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "h.db");
  const first = new HistoryWorker(path);
  await first.ready;
  const events = Array.from({ length: 300 }, (_, i) =>
    fakeEvent({ rule: i % 2 ? "ssh" : "web", connection: i.toString(16) }),
  );
  await Promise.all([first.insert(events.slice(0, 150)), first.insert(events.slice(150))]);
  assert.equal((await first.query({ rule: "ssh", limit: 1000 })).events.length, 150);
  await first.close();
  await assert.rejects(first.query({}), /closed/);

  const again = new HistoryWorker(path);
  t.after(() => again.close());
  const page = await again.query({ limit: 10 });
  assert.equal(page.events.length, 10);
  assert.equal(page.events[0]?.connection, (299).toString(16), "newest first");
});

test("a store that cannot open rejects ready and every call with the reason", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hworker-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "not-a-dir");
  writeFileSync(file, "x");
  const w = new HistoryWorker(join(file, "h.db"));
  t.after(() => w.close());
  await assert.rejects(w.ready, /not-a-dir is not a directory/);
  await assert.rejects(w.insert([fakeEvent({})]), /history/);
});

/** 40k events of ~16 MB into a store kept under 1 MiB: tens of thousands of rows to prune. */
async function fillOverLimit(w: HistoryWorker): Promise<void> {
  const pad = "x".repeat(200);
  for (let batch = 0; batch < 40; batch++)
    await w.insert(
      Array.from({ length: 1000 }, (_, i) =>
        fakeEvent({ rule: `r-${pad}`, connection: `${batch}-${i}` }),
      ),
    );
}

test("pruning a large store lets inserts through between its steps and keeps the newest events", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hworker-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const w = new HistoryWorker(join(dir, "h.db"), { maxBytes: 1 << 20 });
  t.after(() => w.close());
  await w.ready;
  await fillOverLimit(w);
  // tens of thousands of rows to delete: the insert posted after the prune is answered first
  const order: string[] = [];
  const pruned = w.prune().then((n) => (order.push("prune"), n));
  const inserted = w.insert([fakeEvent({ connection: "during" })]).then(() => order.push("insert"));
  const [deleted] = await Promise.all([pruned, inserted]);
  assert.deepEqual(order, ["insert", "prune"]);
  assert.ok(deleted > 10_000, `${deleted} deleted`);
  const newest = await w.query({ limit: 1 });
  assert.equal(newest.events[0]?.connection, "during", "the newest event is kept");
});

test("a query with until deep in a large store lets inserts through between its steps", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hworker-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const w = new HistoryWorker(join(dir, "h.db"));
  t.after(() => w.close());
  await w.ready;
  const base = Date.parse("2026-11-22T10:00:00Z");
  const total = 3 * QUERY_WINDOW_IDS;
  for (let at = 0; at < total; at += 10_000)
    await w.insert(
      Array.from({ length: 10_000 }, (_, i) =>
        fakeEvent({
          time: new Date(base + (at + i) * 1000).toISOString(),
          connection: `${at + i}`,
        }),
      ),
    );
  // the oldest 60k events: the query walks the newer ones, a window a step; the insert posted
  // after it is answered first
  const order: string[] = [];
  const until = base + 2 * QUERY_WINDOW_IDS * 1000 - 40_000_000;
  const queried = w.query({ until, limit: 3 }).then((page) => (order.push("query"), page));
  const inserted = w.insert([fakeEvent({ connection: "during" })]).then(() => order.push("insert"));
  const [page] = await Promise.all([queried, inserted]);
  assert.deepEqual(order, ["insert", "query"]);
  const last = (until - base) / 1000;
  assert.deepEqual(
    page.events.map((e) => e.connection),
    [last, last - 1, last - 2].map(String),
  );
});

test("a store closed while it prunes answers the prune with the events it deleted", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hworker-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const w = new HistoryWorker(join(dir, "h.db"), { maxBytes: 1 << 20 });
  await w.ready;
  await fillOverLimit(w);
  // the close is posted while the prune has steps to go: the daemon stopping is not a failure
  const pruned = w.prune();
  await w.close();
  const deleted = await pruned;
  assert.ok(deleted > 0, `${deleted} deleted`);
});
