// What the daemon's host watch reacts to: entries of the directories process rules depend on
// (every name, or only the names given), never a directory that is not there; and a recompile
// asked for during one runs once more after it, not once per request.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchDirs } from "../../src/host/index.ts";
import { coalesced } from "../../src/daemon/host-universe.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await sleep(20);
}

test("entries of watched directories are noticed, by name where names are given", async (t) => {
  const bin = mkdtempSync(join(tmpdir(), "moat-dirs-"));
  const etc = mkdtempSync(join(tmpdir(), "moat-dirs-"));
  let changes = 0;
  const watch = watchDirs(() => changes++, 20);
  t.after(() => {
    watch.close();
    rmSync(bin, { recursive: true, force: true });
    rmSync(etc, { recursive: true, force: true });
  });
  watch.set([{ dir: bin }, { dir: etc, names: ["passwd"] }, { dir: join(bin, "absent") }]);

  writeFileSync(join(bin, "curl"), "");
  await until(() => changes > 0);
  assert.equal(changes, 1, "a new file in a directory watched for every name");

  writeFileSync(join(etc, "group"), "");
  writeFileSync(join(etc, "passwd"), "");
  await until(() => changes > 1);
  assert.equal(changes, 2, "passwd (and group with it, in one burst)");

  watch.set([{ dir: etc, names: ["passwd"] }]);
  writeFileSync(join(bin, "wget"), "");
  writeFileSync(join(etc, "passwd"), "x");
  await until(() => changes > 2);
  assert.equal(changes, 3, "the directory no longer watched is not, the one kept still is");
});

test("requests during a run lead to one more run, not one each", async () => {
  const started: number[] = [];
  let release = () => {};
  const run = coalesced(async () => {
    started.push(started.length);
    await new Promise<void>((r) => (release = r));
  });
  run();
  run();
  run();
  run();
  assert.equal(started.length, 1);
  release();
  await until(() => started.length === 2);
  assert.equal(started.length, 2);
  release();
  await sleep(20);
  assert.equal(started.length, 2);
});
