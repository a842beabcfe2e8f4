// B10 (suggest): `moat suggest`'s core over roll-ups that represent 10M stored events: a week of
// hour-level flow_stats rows (the level a 7-day suggestion reads) written straight into a
// history database, 500,000 rows (the store's per-level cap) of 20 connections each over 50,000
// distinct identity x peer x port keys (500 identities x 100 destinations: names under shared
// domains, addresses in shared /24s, adjacent ports). Timed: reading and adding up the window
// (learnRows), then proposing, generalising, writing the text and its diff (suggestPolicy).
// Median of 3.
//
//   node bench/suggest.ts [ROWS]      prints one JSON line; bench/results/suggest.json
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../src/config/index.ts";
import { ROLLUP_SQL } from "../src/observe/history/rollup.ts";
import { learnRows } from "../src/observe/history/learn.ts";
import { suggestPolicy } from "../src/observe/learn/index.ts";
import { median, writeResult } from "./results.ts";

const ROWS = Number(process.argv[2] ?? 500_000);
const IDENTITIES = 500;
const DESTINATIONS = 100;
const PER_ROW = 20;
const HOUR = 3_600_000;
const NOW = Date.parse("2026-11-30T12:00:00Z");
const NOW_HOUR = NOW - (NOW % HOUR);

const POLICY = `version: 1
mode: detect
defaults: { ingress: block, egress: block }
attach: { interfaces: ["*"], cgroup: / }
rules:
  - name: loopback
    direction: any
    action: allow
    layer3: { remote: [127.0.0.0/8, "::1"] }
  - name: dns-out
    direction: egress
    action: allow
    layer4: { protocol: udp, port: [53] }
`;

/** Destination d of identity i: a name under one of 20 domains, or an address in a /24. */
function destination(i: number, d: number): { peer: string; port: number } {
  if (d % 2 === 0) return { peer: `h${d}.svc${(i + d) % 20}.example.co.uk`, port: 443 };
  return { peer: `10.${i % 250}.${d % 7}.${d}`, port: 8000 + (d % 4) };
}

const dir = mkdtempSync(join(tmpdir(), "moat-bench-suggest-"));
try {
  const db = new Database(join(dir, "history.db"));
  db.pragma("journal_mode = WAL");
  db.exec(ROLLUP_SQL);
  const insert = db.prepare(
    "INSERT INTO flow_stats VALUES ('hour', ?, ?, 0, ?, ?, '', ?, ?, 'tcp', 'egress', ?, ?, ?, ?, 0, 0, ?, ?, 0, 0, ?)",
  );
  const keys = IDENTITIES * DESTINATIONS;
  const hoursPerKey = Math.ceil(ROWS / keys);
  const startFill = performance.now();
  db.transaction(() => {
    for (let n = 0; n < ROWS; n++) {
      const key = n % keys;
      const hour = Math.floor(n / keys);
      const i = Math.floor(key / DESTINATIONS);
      const { peer, port } = destination(i, key % DESTINATIONS);
      const bucket = NOW_HOUR - (hoursPerKey - hour + 72) * HOUR;
      insert.run(
        bucket,
        `/usr/bin/app${i}`,
        1000 + (i % 50),
        "/system.slice/app.service",
        peer,
        port,
        PER_ROW,
        PER_ROW,
        10 * PER_ROW,
        1000 * PER_ROW,
        bucket,
        bucket + 1000,
        PER_ROW,
      );
    }
  })();
  const fillMs = performance.now() - startFill;
  const model = parsePolicy(POLICY, "policy.yaml");
  const since = NOW - 7 * 24 * HOUR;
  const learnMs: number[] = [];
  const suggestMs: number[] = [];
  let rules = 0;
  let diffLines = 0;
  let learnt = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    const learn = learnRows(db, since, NOW);
    const t1 = performance.now();
    const s = suggestPolicy(
      { text: POLICY, model, fileName: "policy.yaml", now: NOW, since },
      learn,
    );
    const t2 = performance.now();
    learnMs.push(t1 - t0);
    suggestMs.push(t2 - t1);
    rules = s.rules.length;
    diffLines = s.diff.length;
    learnt = learn.rows.length;
  }
  db.close();
  const result = {
    bench: "suggest",
    rollupRows: ROWS,
    eventsRepresented: ROWS * PER_ROW,
    distinctKeys: learnt,
    fillSeconds: +(fillMs / 1000).toFixed(1),
    learnSeconds: +(median(learnMs) / 1000).toFixed(2),
    suggestSeconds: +(median(suggestMs) / 1000).toFixed(2),
    totalSeconds: +((median(learnMs) + median(suggestMs)) / 1000).toFixed(2),
    rulesProposed: rules,
    diffLines,
  };
  console.log(JSON.stringify(result));
  writeResult("suggest", result);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
