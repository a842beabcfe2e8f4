// moat suggest over a history a hostile local user filled: many names under one domain or
// addresses in one prefix are generalised in one pass (the roll-ups may hand over 200,000 rows
// of one identity), and the number of proposed rules is capped, identities kept whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { acceptPolicy, nodeHost } from "../../src/host/index.ts";
import { identityDays, learnRows, MAX_LEARN_CHARS } from "../../src/observe/history/learn.ts";
import { ROLLUP_SQL } from "../../src/observe/history/rollup.ts";
import {
  GENERALISE_DEFAULTS,
  generalisePeers,
  MAX_LEARN_ROWS,
  MAX_RULES,
  propose,
  type LearnRow,
} from "../../src/observe/learn/index.ts";

const DAY = 86_400_000;

test("suggest: a learn-row cap's worth of names under one domain is generalised in one pass", () => {
  const names = Array.from({ length: MAX_LEARN_ROWS }, (_, i) => `h${i}.evil.example`);
  const [d, ...rest] = generalisePeers(names);
  assert.deepEqual([d?.entry, d?.peers.length, rest.length], ["*.evil.example", names.length, 0]);
  const ips = Array.from(
    { length: MAX_LEARN_ROWS },
    (_, i) => `2001:db8::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`,
  );
  const [p, ...more] = generalisePeers(ips);
  assert.deepEqual([p?.entry, p?.peers.length, more.length], ["2001:db8::/64", ips.length, 0]);
});

test("suggest: the proposed rules are capped, each identity's rules all or none", () => {
  const now = Date.parse("2026-11-30T12:00:00Z");
  const text = readFileSync(join(import.meta.dirname, "../fixtures/suggest/policy.yaml"), "utf8");
  const { policy } = acceptPolicy(text, "/etc/moat/policy.yaml", { host: nodeHost });
  // 500 executables, each reaching 100 addresses on a port of its own: a rule each
  const rows: LearnRow[] = Array.from({ length: 50_000 }, (_, i) => ({
    exe: `/home/eve/bin/x${Math.floor(i / 100)}`,
    nameOnly: false,
    user: 1000,
    container: "",
    peer: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
    port: 1000 + (i % 100) * 2,
    protocol: "tcp",
    direction: "egress",
    connections: 1 + Math.floor(i / 100),
    allowed: 0,
    blocked: 0,
    detected: 1,
    firstMs: now - 7 * DAY,
    lastMs: now - DAY,
    processes: 1,
  }));
  const p = propose(policy!.model, rows, { ...GENERALISE_DEFAULTS, now, stableMs: 2 * DAY });
  assert.ok(p.rules.length <= MAX_RULES, `${p.rules.length} rules`);
  const per = new Map<string, number>();
  for (const r of p.rules) per.set(r.identity.exe, (per.get(r.identity.exe) ?? 0) + 1);
  assert.ok(
    [...per.values()].every((n) => n === 100),
    "an identity's rules are all there",
  );
  const proposed = p.rules.reduce((n, r) => n + r.hits, 0);
  const all = rows.reduce((n, r) => n + r.connections, 0);
  assert.equal(proposed + p.notProposed.capped, all, "what is left out is counted");
});

test("suggest: the roll-ups are read up to a budget of text, the rest counted", (t) => {
  // one executable at a 4,000-character path reaching a peer a row: each row read holds its
  // own copy of the path, and the row cap alone would let them fill the worker's heap
  const dir = mkdtempSync(join(tmpdir(), "moat-suggest-chars-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = new Database(join(dir, "h.db"));
  t.after(() => db.close());
  db.exec(ROLLUP_SQL);
  const now = Date.parse("2026-11-30T12:00:00Z");
  const bucket = now - 3 * DAY;
  const exe = `/home/eve/${"d/".repeat(1995)}x`;
  const insert = db.prepare(
    "INSERT INTO flow_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const n = 20_000;
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const peer = `10.0.${i >> 8}.${i & 255}`;
      const flow = [1, 1, 1, 1, 1, 1, bucket, bucket, 0, 0, 1];
      insert.run("hour", bucket, exe, 0, 1000, "/u", "", peer, 443, "tcp", "egress", ...flow);
    }
  })();
  const read = learnRows(db, now - 7 * DAY, now);
  const chars = read.rows.reduce((s, r) => s + r.exe.length + r.peer.length, 0);
  assert.ok(chars <= MAX_LEARN_CHARS + exe.length + 16, `${chars} characters read`);
  assert.equal(read.rows.length + read.overflow.rows, n, "the rows left out are counted");
});

test("suggest --promote: the days read are capped, and the rest counted, never taken as clean", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-suggest-days-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = new Database(join(dir, "h.db"));
  t.after(() => db.close());
  db.exec(ROLLUP_SQL);
  const now = Date.parse("2026-11-30T12:00:00Z");
  const insert = db.prepare(
    "INSERT INTO flow_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  // 50 identities (a copy of a binary each) on each of 7 days
  db.transaction(() => {
    for (let day = 1; day <= 7; day++)
      for (let i = 0; i < 50; i++) {
        const bucket = now - day * DAY;
        const flow = [1, 1, 1, 1, 1, 1, bucket, bucket, 0, 0, 1];
        insert.run(
          "hour",
          bucket,
          `/tmp/copy-${i}`,
          0,
          1000,
          "/u",
          "",
          "10.0.0.1",
          443,
          "tcp",
          "egress",
          ...flow,
        );
      }
  })();
  const all = identityDays(db, now - 8 * DAY, now);
  assert.deepEqual([all.days.length, all.overflow], [350, 0]);
  const capped = identityDays(db, now - 8 * DAY, now, 100);
  assert.deepEqual([capped.days.length, capped.overflow], [100, 250]);
});
