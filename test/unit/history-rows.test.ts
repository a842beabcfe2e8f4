// The history's batched rows: a batch of mixed events written as multi-row inserts (and through
// the store's thread, where the rows arrive cloned) reads back exactly as events written one at
// a time, and every filter finds the same events either way; a store made with the indexes of
// earlier versions opens with only the ones kept now and answers the same queries.
import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { parseFilter } from "../../src/observe/filter.ts";
import { fakeEvent } from "../helpers/events.ts";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-hrows-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const proc = (i: number, container: boolean) => ({
  pid: 100 + i,
  name: i % 2 ? "curl" : "nginx",
  path: "/usr/bin/x",
  user: 0,
  cgroup: "/x",
  container: container
    ? { id: `${"ab".repeat(31)}${i % 3}c`, name: `web${i % 3}`, image: "nginx" }
    : null,
});

/** 75 events: two full 32-row inserts and 11 single rows; every kind of value a row holds. */
function mixed(): MoatEvent[] {
  const base = Date.parse("2026-12-01T00:00:00Z");
  return Array.from({ length: 75 }, (_, i) => {
    const ips = [`10.2.${i >> 4}.${i & 15}`, `2001:db8::${i.toString(16)}`, `::ffff:192.0.2.${i}`];
    return fakeEvent({
      time: new Date(base + i * 10).toISOString(),
      type: (["blocked", "allowed", "detected", "closed", "dns"] as const)[i % 5],
      verdict: i % 4 ? "blocked" : "allowed",
      rule: `r${i % 7}`,
      direction: i % 3 ? "ingress" : "egress",
      protocol: i % 6 ? "tcp" : "udp",
      remote: {
        ip: ips[i % 3] ?? "",
        port: 1000 + i,
        ...(i % 9 === 0 ? { names: ["a.example"] } : {}),
      },
      process: i % 4 === 0 ? null : proc(i, i % 8 === 1),
      connection: i % 10 === 0 ? null : i.toString(16),
      ...(i % 11 === 0 ? { stats: { packets: i, bytes: i * 100, durationMs: 1.5 } } : {}),
      ...(i % 13 === 0 ? { layer7: { tls: { sni: "x.example" } } } : {}),
    });
  });
}

const QUERIES = [
  "",
  "type=blocked",
  "type=dns&type=closed",
  "verdict=allowed",
  "rule=r3",
  "direction=egress",
  "remote=10.2.1.0/28",
  "remote=2001:db8::/32",
  "remote=192.0.2.0/24",
  "remote=a.example",
  "process=curl",
  "process=103",
  "container=web1",
  "container=abab",
];

const all = async (store: { query: HistoryStore["query"] | HistoryWorker["query"] }, q: string) =>
  (await store.query({ ...parseFilter(new URLSearchParams(q)), limit: 1000 })).events;

test("a batch written as multi-row inserts reads back as the same events written one at a time", async (t) => {
  const dir = tempDir(t);
  const events = mixed();
  const single = new HistoryStore(join(dir, "single.db"));
  t.after(() => single.close());
  for (const e of events) single.insert([e]);
  const batched = new HistoryStore(join(dir, "batched.db"));
  t.after(() => batched.close());
  batched.insert(events);
  const threaded = new HistoryWorker(join(dir, "threaded.db"));
  t.after(() => threaded.close());
  await threaded.ready;
  await threaded.insert(events);

  const back = await all(batched, "");
  assert.equal(back.length, events.length);
  // newest first, each with its id: the events themselves, field for field
  assert.deepEqual(
    back.map(({ id: _id, ...e }) => e),
    [...events].reverse(),
  );
  for (const q of QUERIES) {
    const want = await all(single, q);
    assert.deepEqual(await all(batched, q), want, `query '${q}' (batched)`);
    assert.deepEqual(await all(threaded, q), want, `query '${q}' (through the thread)`);
    if (q !== "") assert.ok(want.length > 0 && want.length < events.length, `query '${q}' selects`);
  }
});

test("a store made with the earlier indexes keeps only today's and answers the same", async (t) => {
  const path = join(tempDir(t), "old.db");
  const fresh = new HistoryStore(path);
  fresh.insert(mixed());
  fresh.close();
  // the indexes earlier versions made
  const old = new Database(path);
  old.exec(`
    DROP INDEX IF EXISTS events_by_process;
    DROP INDEX IF EXISTS events_by_container;
    CREATE INDEX events_type ON events (type, id);
    CREATE INDEX events_verdict ON events (verdict, id);
    CREATE INDEX events_process ON events (process_name, id);
    CREATE INDEX events_container ON events (container_id, id);
    CREATE INDEX events_connection ON events (connection);
    CREATE INDEX events_remote ON events (remote_family, remote_key);`);
  old.close();

  const store = new HistoryStore(path);
  t.after(() => store.close());
  const check = new Database(path, { readonly: true });
  const indexes = (
    check
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name",
      )
      .all() as { name: string }[]
  ).map((r) => r.name);
  check.close();
  assert.deepEqual(indexes, [
    "events_by_container",
    "events_by_process",
    "events_rule",
    "events_time",
  ]);
  assert.equal(
    (await all(store, "process=curl")).length,
    mixed().filter((e) => e.process?.name === "curl").length,
  );
  assert.equal(
    (await all(store, "remote=10.2.0.0/16")).length,
    mixed().filter((e) => e.remote.ip.startsWith("10.2.")).length,
  );
  assert.equal(
    (await all(store, "type=blocked")).length,
    mixed().filter((e) => e.type === "blocked").length,
  );
});
