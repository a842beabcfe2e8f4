// The pin directory in bpffs, which is often mounted 1777: a directory another user made there is
// refused (they could swap it for a symlink), pin directories are 0700 whatever the umask, a
// removal never follows a symlinked root (a clean stop and `moat cleanup`), and a cgroup or
// interface name with a dot (bpffs refuses such pin names) still gets its links pinned.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Datapath } from "../../src/datapath/datapath.ts";
import { removeLeftoverPins } from "../../src/datapath/leftovers.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";
import { MOAT } from "../helpers/paths.ts";

const NOBODY = 65534;
let cg: TestCgroup;
/** A dot in its name, as in /system.slice. */
let dotted: TestCgroup;

before(() => {
  cg = testCgroup("pindir");
  dotted = testCgroup("pin.dot");
});
after(() => {
  cg.remove();
  dotted.remove();
});

const pinRoot = (kind: string) => `/sys/fs/bpf/moat-test-pindir-${kind}-${process.pid}`;

/** A directory of root's only (0700) holding a file, which a removal must not reach. */
function victim(t: { after: (fn: () => void) => void }): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), `moat-pindir-victim-${process.pid}-`));
  const file = join(dir, "precious");
  writeFileSync(file, "keep me\n");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, file };
}

/** Removes a test pin directory whatever it became (links detached first). */
function removePins(path: string): void {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isSymbolicLink()) rmSync(path);
  else {
    try {
      removeLeftoverPins(path);
    } catch {
      rmSync(path, { recursive: true, force: true });
    }
  }
}

test("a pin directory another user made is refused, and nothing is pinned in it", (t) => {
  const root = pinRoot("planted");
  t.after(() => removePins(root));
  mkdirSync(root);
  chownSync(root, NOBODY, NOBODY);
  let dp: Datapath | null = null;
  let error: unknown = null;
  try {
    dp = Datapath.start({ interfaces: [], pinRoot: root, cgroup: cg.dir });
  } catch (err) {
    error = err;
  }
  dp?.stop();
  assert.match(String(error), /pin directory .*owned by uid 65534, not root/);
  assert.deepEqual(readdirSync(root), []);
});

test("pin directories are 0700 whatever the umask, and pins with a dot in the cgroup's name", (t) => {
  const root = pinRoot("umask");
  t.after(() => removePins(root));
  const umask = process.umask(0);
  let dp: Datapath;
  try {
    dp = Datapath.start({ interfaces: [], pinRoot: root, cgroup: dotted.dir });
  } finally {
    process.umask(umask);
  }
  try {
    assert.equal(lstatSync(root).mode & 0o7777, 0o700);
    assert.equal(lstatSync(join(root, "maps")).mode & 0o7777, 0o700);
    const links = readdirSync(root).filter((name) => name.startsWith("link_"));
    assert.ok(links.length > 0, "no link pinned");
    assert.ok(
      links.every((name) => !name.includes(".")),
      links.join(" "),
    );
    assert.ok(dp.attachments.every((a) => a.pin !== null));
  } finally {
    dp.stop();
  }
  assert.ok(!existsSync(root), "a clean stop leaves no pin directory");
});

test("a stop and moat cleanup never remove through a pin directory swapped for a symlink", (t) => {
  const root = pinRoot("swapped");
  const moved = `${root}-moved`;
  t.after(() => {
    removePins(root);
    removePins(moved);
  });
  const { dir, file } = victim(t);
  const dp = Datapath.start({ interfaces: [], pinRoot: root, cgroup: cg.dir });
  renameSync(root, moved);
  symlinkSync(dir, root);
  let stopError: unknown = null;
  try {
    dp.stop();
  } catch (err) {
    stopError = err;
  }
  assert.ok(existsSync(file), "the stop removed the symlink's target");
  assert.equal(stopError, null, "the stop threw");
  assert.ok(lstatSync(root).isSymbolicLink(), "the symlink was replaced");

  assert.throws(() => removeLeftoverPins(root), /pin directory .*symlink/);
  assert.ok(existsSync(file), "removeLeftoverPins removed the symlink's target");
  const r = spawnSync(MOAT, ["cleanup", "--pin-dir", root, "--api", `unix:${dir}/none.sock`], {
    encoding: "utf8",
  });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /pin directory .*symlink/);
  assert.ok(existsSync(file), "moat cleanup removed the symlink's target");
});
