// The compile cache holds code the daemon runs as root: only a directory of root's that no one
// else can read or write, on a path only root can change, is used; any other is refused with the
// reason (the daemon logs it and runs without a cache).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { compileCacheDir } from "../../src/host/compile-cache.ts";
import { scratchDir } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;

const refusal = (state: string): string => {
  const choice = compileCacheDir(state);
  assert.ok("refused" in choice, `refused: ${JSON.stringify(choice)}`);
  return choice.refused;
};

test("a missing cache directory is made 0700 in the state directory and used", (t) => {
  const state = join(scratchDir(t, "cc"), "state");
  assert.deepEqual(compileCacheDir(state), { dir: join(state, "compile-cache") });
  assert.equal(statSync(state).mode & 0o777, 0o700);
  assert.equal(statSync(join(state, "compile-cache")).mode & 0o777, 0o700);
  assert.deepEqual(compileCacheDir(state), { dir: join(state, "compile-cache") });
});

test("a cache directory another user owns is refused", (t) => {
  const state = scratchDir(t, "cc", 0o700);
  mkdirSync(join(state, "compile-cache"), { mode: 0o700 });
  chownSync(join(state, "compile-cache"), NOBODY, NOBODY);
  assert.match(refusal(state), /compile-cache: is owned by uid 65534, not root/);
});

test("a cache directory group or others may read or write is refused", (t) => {
  for (const mode of [0o777, 0o770, 0o755, 0o1777]) {
    const state = scratchDir(t, "cc", 0o700);
    mkdirSync(join(state, "compile-cache"));
    chmodSync(join(state, "compile-cache"), mode);
    assert.match(refusal(state), /is open to group or others \(mode \d+\); make it 0700/);
  }
});

test("a symlink in the cache directory's place is refused, not followed", (t) => {
  const state = scratchDir(t, "cc", 0o700);
  const elsewhere = scratchDir(t, "cc-elsewhere", 0o700);
  symlinkSync(elsewhere, join(state, "compile-cache"));
  assert.match(refusal(state), /is a symlink; refusing to follow it/);
});

test("a state directory others may write is refused: they could swap the cache", (t) => {
  const state = scratchDir(t, "cc", 0o777);
  assert.match(refusal(state), /is writable by group or others \(mode 0777\)/);
  assert.equal(existsSync(join(state, "compile-cache")), false, "nothing made there");
  const owned = scratchDir(t, "cc", 0o700);
  chownSync(owned, NOBODY, NOBODY);
  assert.match(refusal(owned), /is owned by uid 65534, not root/);
});
