// The decision store on a full disk (a small tmpfs, filled): an add, a removal or a mode the file
// cannot take is refused (ENOTSAVED, naming the file and the errno) and not made; expiries still
// happen, and a store read from that disk starts, saying the file could not be written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DecisionStore } from "../../src/daemon/decision-store.ts";
import { smallDisk } from "../helpers/small-disk.ts";

const NOT_SAVED =
  /could not save the decisions to \S+decisions\.json: ENOSPC \(no space left on device\)/;

test("a change the decisions file cannot take is refused and not made", (t) => {
  const { dir } = smallDisk(t, "64k", "moat-store-full");
  const path = join(dir, "decisions.json");
  const clock = { ms: Date.parse("2026-01-01T00:00:00Z") };
  const logs: string[] = [];
  const open = () =>
    new DecisionStore({ path, log: (l) => logs.push(l), boot: "b1", now: () => clock.ms });
  const store = open();
  const request = {
    action: "allow",
    direction: "ingress",
    remote: "192.0.2.1",
    by: "test",
  } as const;
  const kept = store.add({ ...request, lifetime: "1h" }).decision;
  spawnSync("dd", ["if=/dev/zero", `of=${join(dir, "fill")}`, "bs=4k"]);
  const onDisk = readFileSync(path, "utf8");

  const refused = (fn: () => unknown) =>
    assert.throws(fn, (err: Error & { code?: string }) => {
      assert.equal(err.code, "ENOTSAVED");
      assert.match(err.message, NOT_SAVED);
      return true;
    });
  refused(() => store.add({ ...request, remote: "192.0.2.2", lifetime: "forever" }));
  refused(() => store.add({ ...request, action: "block", lifetime: "forever" }));
  refused(() => store.setMode("detect", "test"));
  refused(() => store.remove(kept.id));
  assert.deepEqual(store.list(), [kept], "the decisions held are the file's");
  assert.equal(store.mode(), undefined, "no mode was decided");
  assert.equal(readFileSync(path, "utf8"), onDisk);

  clock.ms += 2 * 3600_000;
  assert.deepEqual(store.takeExpired(), [kept], "an expiry is not held back by the disk");
  assert.deepEqual(store.list(), []);
  const again = open();
  assert.deepEqual(again.list(), [], "read again, the expired decision is dropped");
  assert.ok(logs.some((l) => NOT_SAVED.test(l)));
});
