// Pin directories as src/datapath/bpffs.ts makes and removes them, in a scratch directory that is
// sticky and world-writable as bpffs often is: 0700 whatever the umask, another user's directory
// refused, a removal that never follows a symlinked root, and pin names without a dot.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ensureDir, linkPinName, removeTree } from "../../src/datapath/bpffs.ts";
import { scratchDir } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;

test("pin directories are made 0700 whatever the umask", (t) => {
  const root = join(scratchDir(t, "pindir", 0o1777), "moat");
  const umask = process.umask(0);
  try {
    ensureDir(join(root, "maps"));
  } finally {
    process.umask(umask);
  }
  assert.equal(statSync(root).mode & 0o7777, 0o700);
  assert.equal(statSync(join(root, "maps")).mode & 0o7777, 0o700);
});

test("a pin directory another user made, or others can write, is refused", (t) => {
  const base = scratchDir(t, "pindir", 0o1777);
  const planted = join(base, "planted");
  mkdirSync(planted);
  chownSync(planted, NOBODY, NOBODY);
  assert.throws(() => ensureDir(planted), /pin directory .*owned by uid 65534, not root/);
  const open = join(base, "open");
  mkdirSync(open);
  chmodSync(open, 0o1777);
  assert.throws(() => ensureDir(open), /pin directory .*writable by group or others/);
  const link = join(base, "link");
  symlinkSync(open, link);
  assert.throws(() => ensureDir(link), /pin directory .*symlink/);
});

test("removing a pin directory never follows a symlink in its place", (t) => {
  const base = scratchDir(t, "pindir", 0o1777);
  const target = join(base, "target");
  mkdirSync(target, { mode: 0o700 });
  writeFileSync(join(target, "precious"), "keep\n");
  const root = join(base, "moat");
  symlinkSync(target, root);
  assert.throws(() => removeTree(root), /pin directory .*symlink/);
  assert.ok(existsSync(join(target, "precious")));
  ensureDir(join(base, "real", "maps"));
  writeFileSync(join(base, "real", "maps", "pin"), "");
  assert.equal(removeTree(join(base, "real")), true);
  assert.ok(!existsSync(join(base, "real")));
  assert.equal(removeTree(join(base, "gone")), false);
});

test("a link's pin name has no dot, which bpffs refuses", () => {
  assert.equal(linkPinName("xdp", "eth0"), "link_xdp_eth0");
  assert.equal(
    linkPinName("moat_connect4", "cgroup_sys_fs_cgroup_system.slice"),
    "link_moat_connect4_cgroup_sys_fs_cgroup_system%2eslice",
  );
  assert.notEqual(linkPinName("xdp", "a.b"), linkPinName("xdp", "a%2eb"));
});
