// The event history: filtered, paged queries; retention by age and size; kept across a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { HistoryStore, PRUNE_SQL, QUERY_WINDOW_IDS } from "../../src/observe/history/store.ts";
import { matchesFilter, parseFilter } from "../../src/observe/filter.ts";
import { fakeEvent } from "../helpers/events.ts";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-history-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const filter = (q: string) => parseFilter(new URLSearchParams(q));

test("queries filter by type, rule, direction, remote CIDR and time; pages walk newest first", (t) => {
  const store = new HistoryStore(join(tempDir(t), "h.db"));
  t.after(() => store.close());
  const base = Date.parse("2026-11-22T10:00:00Z");
  const events = Array.from({ length: 250 }, (_, i) =>
    fakeEvent({
      time: new Date(base + i * 1000).toISOString(),
      type: i % 5 === 0 ? "allowed" : "blocked",
      verdict: i % 5 === 0 ? "allowed" : "blocked",
      rule: i % 2 ? "ssh" : "default",
      direction: i % 3 ? "ingress" : "egress",
      remote: {
        ip: i < 200 ? `10.1.${i >> 8}.${i & 255}` : `2001:db8::${i.toString(16)}`,
        port: 1000 + i,
      },
      connection: i.toString(16),
    }),
  );
  store.insert(events);

  const blocked = store.query({ ...filter("type=blocked"), limit: 1000 });
  assert.equal(blocked.events.length, 200);
  assert.ok(blocked.events.every((e) => e.type === "blocked"));

  const sshIngress = store.query({ ...filter("rule=ssh&direction=ingress"), limit: 1000 }).events;
  assert.equal(sshIngress.length, events.filter((_, i) => i % 2 && i % 3).length);

  const cidr = store.query({ ...filter("remote=10.1.0.64/26"), limit: 1000 }).events;
  assert.deepEqual(
    cidr.map((e) => e.remote.ip).sort(),
    Array.from({ length: 64 }, (_, i) => `10.1.0.${64 + i}`).sort(),
  );
  const v6 = store.query({ ...filter("remote=2001:db8::/32"), limit: 1000 }).events;
  assert.equal(v6.length, 50);

  const window = store.query({ since: base + 10_000, until: base + 19_000, limit: 1000 }).events;
  assert.equal(window.length, 10);

  // paging: 250 events, 100 a page, newest first, no overlap
  const seen: string[] = [];
  let before: number | undefined;
  let pages = 0;
  do {
    const page = store.query({ limit: 100, ...(before ? { before } : {}) });
    seen.push(...page.events.map((e) => e.connection ?? ""));
    before = page.next ?? undefined;
    pages++;
  } while (before);
  assert.equal(pages, 3);
  assert.deepEqual(seen, events.map((e) => e.connection).reverse());
});

test("a filter no index narrows is read a window of ids a step; pages as one statement gives", (t) => {
  const store = new HistoryStore(join(tempDir(t), "h.db"));
  t.after(() => store.close());
  const total = 2 * QUERY_WINDOW_IDS + 20_000;
  const rare = new Set([5, QUERY_WINDOW_IDS + 10, total - 7]);
  const events = Array.from({ length: total }, (_, i) =>
    fakeEvent({
      verdict: rare.has(i) ? "allowed" : "blocked",
      rule: i % 2 ? "ssh" : "default",
      connection: String(i),
    }),
  );
  for (let at = 0; at < total; at += 10_000) store.insert(events.slice(at, at + 10_000));
  const steps = (q: Parameters<HistoryStore["search"]>[0]) => {
    const search = store.search(q);
    let n = 1;
    while (!search.step()) n++;
    return { n, page: search.page() };
  };
  const allowed = steps({ ...filter("verdict=allowed"), limit: 10 });
  assert.equal(allowed.n, 3, "three windows: the whole store, a window at a time");
  assert.deepEqual(
    allowed.page.events.map((e) => e.connection),
    [...rare].sort((a, b) => b - a).map(String),
  );
  assert.equal(allowed.page.next, null);
  // pages across windows: the cursor of the first, then the rest
  const first = store.query({ ...filter("verdict=allowed"), limit: 2 });
  assert.deepEqual(
    first.events.map((e) => e.connection),
    [String(total - 7), String(QUERY_WINDOW_IDS + 10)],
  );
  assert.ok(first.next);
  const second = store.query({ ...filter("verdict=allowed"), limit: 2, before: first.next });
  assert.deepEqual(
    second.events.map((e) => e.connection),
    ["5"],
  );
  assert.equal(second.next, null);
  // a page found in the newest window ends there; an indexed filter is one statement
  assert.equal(steps({ ...filter("verdict=blocked"), limit: 100 }).n, 1);
  const ssh = steps({ ...filter("rule=ssh"), limit: 3 });
  assert.equal(ssh.n, 1);
  assert.deepEqual(
    ssh.page.events.map((e) => e.connection),
    [total - 1, total - 3, total - 5].map(String),
  );
});

test("history survives closing and reopening the database (a daemon restart)", (t) => {
  const path = join(tempDir(t), "h.db");
  const first = new HistoryStore(path);
  first.insert([fakeEvent({ connection: "before-restart" })]);
  first.close();
  assert.equal(statSync(path).mode & 0o777, 0o600, "the database is root-only");
  const second = new HistoryStore(path);
  t.after(() => second.close());
  second.insert([fakeEvent({ connection: "after-restart" })]);
  assert.deepEqual(
    second.query().events.map((e) => e.connection),
    ["after-restart", "before-restart"],
  );
});

test("retention deletes events older than max_age and keeps the store under max_size", (t) => {
  const dir = tempDir(t);
  const now = Date.parse("2026-11-22T12:00:00Z");
  const aged = new HistoryStore(join(dir, "age.db"), { maxAgeSeconds: 3600 });
  t.after(() => aged.close());
  aged.insert([
    fakeEvent({ time: new Date(now - 7200_000).toISOString(), connection: "old" }),
    fakeEvent({ time: new Date(now - 60_000).toISOString(), connection: "recent" }),
  ]);
  assert.equal(aged.prune(now), 1);
  assert.deepEqual(
    aged.query().events.map((e) => e.connection),
    ["recent"],
  );

  const maxBytes = 256 * 1024;
  const sized = new HistoryStore(join(dir, "size.db"), { maxBytes });
  t.after(() => sized.close());
  const pad = "x".repeat(200);
  for (let batch = 0; batch < 10; batch++)
    sized.insert(
      Array.from({ length: 500 }, (_, i) =>
        fakeEvent({ rule: `r-${pad}`, connection: `${batch}-${i}` }),
      ),
    );
  assert.ok(sized.stats().bytes > maxBytes, "the test wrote more than the limit");
  const deleted = sized.prune(now);
  const after = sized.stats();
  assert.ok(deleted > 0);
  assert.ok(after.bytes <= maxBytes, `${after.bytes} bytes after pruning, limit ${maxBytes}`);
  const newest = sized.query({ limit: 1 }).events[0];
  assert.equal(newest?.connection, "9-499", "the newest events are the ones kept");
  assert.equal(after.events + deleted, 5000);
});

test("pruning finds the rows it deletes through an index: no statement it runs scans the events", (t) => {
  // a store at its size limit prunes after every 100k rows written; a scan of a 1 GiB store in
  // each step made pruning cost five times the inserts it made room for
  const path = join(tempDir(t), "plan.db");
  const store = new HistoryStore(path);
  t.after(() => store.close());
  const db = new Database(path, { readonly: true });
  t.after(() => db.close());
  for (const [name, sql] of Object.entries(PRUNE_SQL)) {
    const params = Array.from(sql.matchAll(/\?/g), () => 0);
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
      .map((row) => row.detail)
      .join("; ");
    assert.doesNotMatch(plan, /\bSCAN events\b/, `${name}: ${plan}`);
  }
});

test("the history answers a filter as the live stream does: not= on flows, a container id's case", (t) => {
  const store = new HistoryStore(join(tempDir(t), "history.db"));
  t.after(() => store.close());
  const events = [
    fakeEvent({ type: "flow", verdict: "allowed", connection: "flowA" }),
    fakeEvent({ type: "flow", verdict: "blocked", connection: "flowB" }),
    fakeEvent({
      type: "blocked",
      verdict: "blocked",
      connection: "c1",
      process: {
        pid: 7,
        name: "nginx",
        container: { id: "abcdef0123", name: "web" },
      } as never,
    }),
  ];
  store.insert(events);
  const live = (q: string) =>
    events.filter((e) => matchesFilter(filter(q), e)).map((e) => e.connection);
  const history = (q: string) =>
    store.query({ ...filter(q), limit: 100 }).events.map((e) => e.connection);
  for (const q of ["type=flow&not=verdict%3Dallowed", "container=ABCDEF", "container=abcdef"])
    assert.deepEqual(history(q).sort(), live(q).sort(), q);
  assert.deepEqual(history("type=flow&not=verdict%3Dallowed"), ["flowB"]);
  assert.deepEqual(history("container=abcdef"), ["c1"]);
});

test("a query with since/until reads through the time index or a window of ids a step, never the whole store at once", (t) => {
  const path = join(tempDir(t), "time.db");
  const store = new HistoryStore(path);
  t.after(() => store.close());
  const base = Date.parse("2026-11-22T10:00:00Z");
  const total = 2 * QUERY_WINDOW_IDS + 20_000;
  const events = Array.from({ length: total }, (_, i) =>
    fakeEvent({
      time: new Date(base + i * 1000).toISOString(),
      verdict: i === 70_000 ? "allowed" : "blocked",
      rule: i % 2 ? "ssh" : "default",
      connection: String(i),
    }),
  );
  for (let at = 0; at < total; at += 10_000) store.insert(events.slice(at, at + 10_000));
  // every statement a search prepares, explained on a connection of the test's own
  const spied = (store as unknown as { db: Database.Database }).db;
  const prepare = spied.prepare.bind(spied);
  const prepared: string[] = [];
  spied.prepare = ((sql: string) => (prepared.push(sql), prepare(sql))) as typeof spied.prepare;
  const db = new Database(path, { readonly: true });
  t.after(() => db.close());
  const at = (i: number) => base + i * 1000;
  const run = (q: Parameters<HistoryStore["search"]>[0]) => {
    prepared.length = 0;
    const search = store.search(q);
    let steps = 1;
    while (!search.step()) steps++;
    const plans = prepared.map((sql) =>
      (
        db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all(...Array.from(sql.matchAll(/\?/g), () => 0)) as { detail: string }[]
      )
        .map((row) => row.detail)
        .join("; "),
    );
    return { steps, plans, ids: search.page().events.map((e) => Number(e.connection)) };
  };
  const newest = (from: number, to: number, n: number, keep = (_: number) => true) => {
    const out: number[] = [];
    for (let i = to; i >= from && out.length < n; i--) if (keep(i)) out.push(i);
    return out;
  };
  const cases: [string, Parameters<HistoryStore["search"]>[0], number[], "index" | "windows"][] = [
    ["until, the oldest events", { until: at(999), limit: 5 }, newest(0, 999, 5), "index"],
    ["since, the newest", { since: at(total - 1000), limit: 5 }, newest(0, total - 1, 5), "index"],
    [
      "a narrow window deep in the store",
      { since: at(1000), until: at(1999), limit: 5 },
      newest(1000, 1999, 5),
      "index",
    ],
    [
      "a narrow window with a rule",
      { since: at(1000), until: at(1999), rule: "ssh", limit: 5 },
      newest(1000, 1999, 5, (i) => i % 2 === 1),
      "index",
    ],
    [
      "until, most of the store",
      { until: at(total - 60_000), limit: 5 },
      newest(0, total - 60_000, 5),
      "windows",
    ],
    [
      "a wide window and a rare verdict",
      { since: at(10_000), until: at(total - 10), verdict: "allowed", limit: 5 },
      [70_000],
      "windows",
    ],
    [
      "a wide window with a rule",
      { since: at(0), until: at(total - 60_000), rule: "ssh", limit: 5 },
      newest(0, total - 60_000, 5, (i) => i % 2 === 1),
      "windows",
    ],
  ];
  for (const [what, q, expected, how] of cases) {
    const { steps, plans, ids } = run(q);
    assert.deepEqual(ids, expected, what);
    const all = plans.join(" | ");
    assert.doesNotMatch(all, /\bSCAN events\b/, `${what}: ${all}`);
    if (how === "index") {
      assert.equal(steps, 1, what);
      assert.match(all, /INDEX events_time/, `${what}: ${all}`);
    } else {
      // a sort of a wide window would read all of it in one statement
      assert.doesNotMatch(all, /TEMP B-TREE/, `${what}: ${all}`);
      assert.ok(steps > 1, `${what}: ${steps} steps`);
    }
  }
});
