// The review queue is kept across restarts: in a file beside the decisions (0600, written by
// rename), read back at start; an answered entry stays gone; a file holding more than the queue's
// bound is read up to it, the rest counted as overflow; a file that cannot be read starts an
// empty queue, said once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_REVIEW, ReviewQueue } from "../../src/daemon/review-queue.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";

const event = (over: Partial<MoatEvent>): MoatEvent =>
  ({
    time: "2026-12-01T10:00:00.000Z",
    type: "detected",
    verdict: "detected",
    mode: "detect",
    rule: "default",
    direction: "egress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "192.0.2.1", port: 443, names: ["api.example.com"] },
    interface: "eth0",
    process: {
      pid: 9,
      name: "curl",
      path: "/usr/bin/curl",
      user: 1000,
      cgroup: "/",
      container: null,
    },
    layer7: null,
    connection: "1",
    reason: "new",
    hook: "connect",
    generation: 1,
    ...over,
  }) as MoatEvent;

function tempDir(t: { after: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-review-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("the queue survives a restart; an answered entry stays gone", (t) => {
  const path = join(tempDir(t), "review.json");
  const logged: string[] = [];
  const q = new ReviewQueue({ path, log: (l) => logged.push(l) });
  const a = q.add(event({}));
  q.add(event({ time: "2026-12-01T10:05:00.000Z" }));
  const b = q.add(event({ remote: { ip: "192.0.2.2", port: 80 } }));
  q.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);

  const again = new ReviewQueue({ path, log: (l) => logged.push(l) });
  assert.deepEqual(again.view(), q.view());
  assert.equal(again.get(a?.id ?? "")?.count, 2);
  assert.deepEqual(again.get(a?.id ?? "")?.remote.names, ["api.example.com"]);
  again.remove(b?.id ?? "");
  again.close();
  const third = new ReviewQueue({ path, log: (l) => logged.push(l) });
  assert.deepEqual(
    third.view().entries.map((e) => e.id),
    [a?.id],
  );
  third.close();
  assert.deepEqual(logged, []);
  assert.deepEqual(readdirSync(join(path, "..")), ["review.json"], "no temporary file left");
});

test("a change is written soon, without waiting for the stop", async (t) => {
  const path = join(tempDir(t), "review.json");
  const q = new ReviewQueue({ path, log: () => {}, saveDelayMs: 10 });
  t.after(() => q.close());
  q.add(event({}));
  await new Promise((r) => setTimeout(r, 100));
  const read = new ReviewQueue({ path, log: () => {} });
  assert.equal(read.view().entries.length, 1);
});

test("past the bound: entries beyond MAX_REVIEW are counted as overflow, and it is kept", (t) => {
  const path = join(tempDir(t), "review.json");
  const q = new ReviewQueue({ path, log: () => {} });
  for (let i = 0; i < MAX_REVIEW + 3; i++)
    q.add(event({ remote: { ip: `10.0.${i >> 8}.${i & 255}`, port: 443 } }));
  assert.equal(q.view().overflow, 3);
  q.close();
  assert.equal(new ReviewQueue({ path, log: () => {} }).view().overflow, 3);

  // a file with more entries than the bound (written by hand, or an older moat)
  const view = q.view();
  const extra = Array.from({ length: 5 }, (_, i) => ({ ...view.entries[0], id: `e${i}xxxxxxx` }));
  writeFileSync(
    path,
    JSON.stringify({ version: 1, overflow: 3, entries: [...view.entries, ...extra] }),
  );
  const read = new ReviewQueue({ path, log: () => {} });
  assert.equal(read.view().entries.length, MAX_REVIEW);
  assert.equal(read.view().overflow, 8);
});

test("an unreadable file starts an empty queue, said once; a malformed entry is dropped", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "review.json");
  writeFileSync(path, "{not json");
  const logged: string[] = [];
  const q = new ReviewQueue({ path, log: (l) => logged.push(l) });
  assert.equal(q.view().entries.length, 0);
  assert.equal(logged.length, 1);
  assert.match(
    logged[0] ?? "",
    /^warning: the review queue in .* was not read .*: starting empty$/,
  );

  const good = new ReviewQueue({ path: null, log: () => {} }).add(event({}));
  writeFileSync(path, JSON.stringify({ version: 1, overflow: 0, entries: [good, { id: 3 }] }));
  logged.length = 0;
  const read = new ReviewQueue({ path, log: (l) => logged.push(l) });
  assert.deepEqual(
    read.view().entries.map((e) => e.id),
    [good?.id],
  );
  assert.deepEqual(logged, ["warning: a stored review queue entry is dropped: not an entry"]);
});

test("a connection whose id is an entry's but whose identity or destination is not never joins it", (t) => {
  // ids are 40 bits of a hash: a user searching their own paths and ports for another entry's
  // id must not move its count or the names a domain answer would be made for
  const path = join(tempDir(t), "review.json");
  const theirs = event({ remote: { ip: "192.0.2.66", port: 443, names: ["evil.example"] } });
  const id = new ReviewQueue({ path: null, log: () => {} }).add(theirs)!.id;
  const victim = new ReviewQueue({ path: null, log: () => {} }).add(event({}))!;
  writeFileSync(path, JSON.stringify({ version: 1, overflow: 0, entries: [{ ...victim, id }] }));
  const q = new ReviewQueue({ path, log: () => {} });
  assert.equal(q.add(theirs), null);
  assert.deepEqual(
    { names: q.get(id)?.remote.names, count: q.get(id)?.count, overflow: q.view().overflow },
    { names: ["api.example.com"], count: 1, overflow: 1 },
  );
  q.close();
});

test("a full queue of connections with many long names is read back after a restart", (t) => {
  // a zone answering 64 long names with each address, their octets outside printable ASCII
  // written `\\DDD` (dns-name.ts): the file written must be one read back
  const path = join(tempDir(t), "review.json");
  const label = "\\200".repeat(62);
  const names = Array.from({ length: 64 }, (_, i) =>
    [label, label, label, `n${i}`, "example"].join("."),
  );
  // and an executable's path of control characters, each 6 characters as JSON writes it
  const proc = { ...event({}).process!, path: `/${"\u0001".repeat(4094)}` };
  const q = new ReviewQueue({ path, log: () => {} });
  for (let i = 0; i < MAX_REVIEW; i++)
    q.add(event({ remote: { ip: `10.0.${i >> 8}.${i & 255}`, port: 443, names }, process: proc }));
  q.close();
  const logged: string[] = [];
  const again = new ReviewQueue({ path, log: (l) => logged.push(l) });
  assert.deepEqual(logged, []);
  assert.equal(again.view().entries.length, MAX_REVIEW);
  assert.equal(again.view().entries[0]?.remote.names?.[0], names[0], "the first name is kept");
});
