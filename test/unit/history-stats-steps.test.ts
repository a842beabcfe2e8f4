// Flow statistics through the history's thread: a question over many roll-up rows is answered
// in steps, so the events written meanwhile are not held up, and its sums are those of all rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { fakeEvent } from "../helpers/events.ts";

const MINUTE = 60_000;
const PEERS = 32;
const BUCKETS = 1440;

test("a statistics question over a day of minute rows lets inserts through and adds up every row", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hstats-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "h.db");
  const w = new HistoryWorker(path);
  t.after(() => w.close());
  await w.ready;
  // a day of minutes x 32 peers (46,080 rows), written beside the worker's connection
  const now = Date.now();
  const db = new Database(path);
  const row = db.prepare(
    `INSERT INTO flow_stats VALUES ('minute', ?, '/usr/bin/curl', 0, 0, '', '', ?, 443, 'tcp',
       'egress', 1, 1, 2, ?, 5, 5, ?, ?, 1, 0, 0)`,
  );
  db.transaction(() => {
    for (let b = 0; b < BUCKETS; b++) {
      const bucket = now - (now % MINUTE) - b * MINUTE;
      for (let p = 0; p < PEERS; p++)
        row.run(bucket, `peer${p}.example`, 100 * (p + 1), bucket, bucket);
    }
  })();
  db.close();

  const order: string[] = [];
  const stats = w.flowStats({ limit: 1000 }).then((page) => (order.push("stats"), page));
  const inserted = w.insert([fakeEvent({ connection: "during" })]).then(() => order.push("insert"));
  const [page] = await Promise.all([stats, inserted]);
  assert.deepEqual(order, ["insert", "stats"], "the insert is written between the steps");
  assert.equal(page.resolution, "minute");
  assert.equal(page.rows.length, PEERS);
  assert.equal(page.rows[0]?.peer, `peer${PEERS - 1}.example`, "most bytes first");
  assert.equal(page.rows[0]?.connections, BUCKETS);
  assert.equal(page.rows[0]?.bytes, BUCKETS * 100 * PEERS);
  assert.equal(page.rows[31]?.packets, BUCKETS * 2);

  const one = await w.flowStats({ peer: "PEER3.example.", limit: 5 });
  assert.deepEqual(
    one.rows.map((r) => [r.peer, r.connections]),
    [["peer3.example", BUCKETS]],
  );
});
