// The history store in its worker thread: what the daemon uses. Inserts and queries answer in
// order, a closed store reopens with its events, and a store that cannot open says why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
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
