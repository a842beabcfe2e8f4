// The policy file's watcher: a burst of writes is one change, and a change is never lost when the
// watch is set again meanwhile (every applied policy sets it again, a recompile for a new cgroup
// included, often within the debounce of a write).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchFiles } from "../../src/host/index.ts";
import { untilTrue } from "../helpers/until.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The change count once the first change came (a loaded machine may take long to tell the
 * watcher), after three debounces more: a second change would have come by then. */
async function changesAfterFirst(f: { changes: () => number }): Promise<number> {
  await untilTrue("the watcher's change", () => f.changes() > 0, 20_000);
  await sleep(300);
  return f.changes();
}

function fixture(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-watch-"));
  const file = join(dir, "policy.yaml");
  writeFileSync(file, "a\n");
  let changes = 0;
  /** the change count each time a burst began */
  const bursts: number[] = [];
  const watch = watchFiles(
    () => changes++,
    100,
    () => bursts.push(changes),
  );
  t.after(() => {
    watch.close();
    rmSync(dir, { recursive: true, force: true });
  });
  watch.set([file]);
  return { file, watch, changes: () => changes, bursts };
}

test("a burst of writes to a watched file is one change", async (t) => {
  const f = fixture(t);
  for (const text of ["b\n", "c\n", "d\n"]) writeFileSync(f.file, text);
  assert.equal(await changesAfterFirst(f), 1);
});

test("a change is not lost when the watch is set again before its event is read", async (t) => {
  const f = fixture(t);
  writeFileSync(f.file, "b\n");
  f.watch.set([f.file]); // the same tick: the write's event still waits in the watcher
  assert.equal(await changesAfterFirst(f), 1);
});

test("a change is not lost when the watch is set again within the debounce", async (t) => {
  const f = fixture(t);
  writeFileSync(f.file, "b\n");
  await sleep(30); // the watcher has seen the write; its debounce runs
  f.watch.set([f.file]);
  assert.equal(await changesAfterFirst(f), 1);
});

test("a burst is told once at its first write, before its change; the next burst again", async (t) => {
  const f = fixture(t);
  for (const text of ["b\n", "c\n", "d\n"]) writeFileSync(f.file, text);
  assert.equal(await changesAfterFirst(f), 1);
  assert.deepEqual(f.bursts, [0]);
  writeFileSync(f.file, "e\n");
  await untilTrue("the second change", () => f.changes() > 1, 20_000);
  assert.deepEqual(f.bursts, [0, 1]);
});
