// The state files moat writes whole and reads back at start (the local decisions, the review
// queue, the fleet's applied revision): one another user planted, or one in a directory another
// user can write, is not believed; a symlink planted where moat makes its temporary copy is never
// written through (moat makes that copy with O_EXCL|O_NOFOLLOW under a name no one can guess).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { DecisionStore } from "../../src/daemon/decision-store.ts";
import { readDecisionsFile } from "../../src/host/decisions-file.ts";
import { readReviewFile, writeReviewFile } from "../../src/daemon/review-file.ts";
import { readRevisionState, writeRevisionState } from "../../src/fleet/applied-revision.ts";
import { scratchDir, victim, VICTIM_TEXT } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;
const MODE = { mode: "detect", by: "uid 65534", created: new Date().toISOString() };

/** Symlinks at every temporary name moat used to write (pid-named) in `dir`. */
function plantTemporaries(dir: string, file: string, target: string): void {
  symlinkSync(target, join(dir, `.${file}.${process.pid}.tmp`));
  symlinkSync(target, join(dir, `${file}.${process.pid}.tmp`));
}

test("a decisions file another user planted is not read", (t) => {
  const base = scratchDir(t, "statefile");
  const own = join(base, "user");
  mkdirSync(own, { mode: 0o755 });
  chownSync(own, NOBODY, NOBODY);
  const planted = join(own, "decisions.json");
  writeFileSync(planted, JSON.stringify({ version: 1, decisions: [], mode: MODE }));
  chownSync(planted, NOBODY, NOBODY);
  assert.throws(() => readDecisionsFile(planted, "boot", Date.now()), /owned by uid 65534/);
  const lines: string[] = [];
  const store = new DecisionStore({ path: planted, log: (l) => lines.push(l) });
  assert.equal(store.mode(), undefined, "the planted mode decision was obeyed");
  assert.match(lines.join("\n"), /not read/);

  // root's own file in root's own directory, but writable by others
  const open = join(base, "decisions.json");
  writeFileSync(open, JSON.stringify({ version: 1, decisions: [], mode: MODE }));
  chmodSync(open, 0o666);
  assert.throws(() => readDecisionsFile(open, "boot", Date.now()), /writable by group or others/);
  // a missing file is no decisions
  assert.deepEqual(readDecisionsFile(join(base, "none.json"), "boot", Date.now()).decisions, []);
});

test("saving the decisions never writes through a planted temporary file", (t) => {
  const base = scratchDir(t, "statefile");
  const target = victim(base);
  const path = join(base, "decisions.json");
  plantTemporaries(base, "decisions.json", target);
  const store = new DecisionStore({ path, log: () => {} });
  store.setMode("detect", "uid 0");
  assert.equal(readFileSync(target, "utf8"), VICTIM_TEXT);
  assert.equal(store.mode()?.mode, "detect");
  assert.equal(new DecisionStore({ path, log: () => {} }).mode()?.mode, "detect");
  assert.ok(!readdirSync(base).some((n) => n.endsWith(".tmp") && !n.includes(`${process.pid}`)));
});

test("the review queue's file: a planted one is not read, a planted temporary not written through", (t) => {
  const base = scratchDir(t, "statefile");
  const target = victim(base);
  const path = join(base, "review.json");
  plantTemporaries(base, "review.json", target);
  writeReviewFile(path, { overflow: 0, entries: [] } as never);
  assert.equal(readFileSync(target, "utf8"), VICTIM_TEXT);
  assert.deepEqual(readReviewFile(path).entries, []);
  chownSync(path, NOBODY, NOBODY);
  assert.throws(() => readReviewFile(path), /owned by uid 65534/);
});

test("the fleet's revision state: a planted one is not read, a planted temporary not written through", (t) => {
  const base = scratchDir(t, "statefile");
  const target = victim(base);
  const path = join(base, "fleet.json");
  plantTemporaries(base, "fleet.json", target);
  const state = { bucket: "b", key: "k", handled: 3, applied: 3, signed: 0 };
  writeRevisionState(path, state);
  assert.equal(readFileSync(target, "utf8"), VICTIM_TEXT);
  assert.equal(readRevisionState(path, "b", "k").handled, 3);
  chownSync(path, NOBODY, NOBODY);
  assert.throws(() => readRevisionState(path, "b", "k"), /owned by uid 65534/);
});
