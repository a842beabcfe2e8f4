// The path table keys an executable by device, inode and the inode's generation
// (src/policy/compile/process.ts, bpf/include/classify.h exe_class): which keys find a rule's
// file, as the kernel looks them up (processClass is the kernel's walk in TypeScript).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import {
  compileProcess,
  GEN_NONE,
  processClass,
  type ProcessUniverse,
} from "../../src/policy/compile/process.ts";

const model = parsePolicy(
  `version: 1
attach: { cgroup: / }
rules:
  - { name: curl, direction: egress, action: allow, process: { path: [/usr/bin/curl, /opt/app] } }
`,
  "p.yaml",
);

function matches(
  executables: ProcessUniverse["executables"],
  key: { dev: number; ino: bigint; gen?: number },
): boolean {
  const universe: ProcessUniverse = {
    executables,
    users: new Map(),
    cgroups: [],
    routes: { image: { v4: [], v6: [] }, links: [], notes: [] },
  };
  const img = compileProcess(model, universe)!;
  const p = processClass(img, { ...key, comm: "x", uid: 1000, cgroupId: 1n });
  return img.classesOf.get(0)!.includes(p);
}

const curl = { dev: 7, ino: 100n, gen: 5, path: "/usr/bin/curl" };

test("a file is found by its generation, not by another file's given its inode number", () => {
  assert.equal(matches([curl], { dev: 7, ino: 100n, gen: 5 }), true);
  assert.equal(matches([curl], { dev: 7, ino: 100n, gen: 6 }), false, "another generation");
  assert.equal(matches([curl], { dev: 7, ino: 101n, gen: 5 }), false, "another inode");
});

test("a record from before generations (0) is taken as an inode without one", () => {
  assert.equal(matches([curl], { dev: 7, ino: 100n, gen: 0 }), true);
  // a file whose inode has no generation (overlayfs): keyed GEN_NONE on both sides
  const overlay = { dev: 9, ino: 200n, gen: GEN_NONE, path: "/opt/app" };
  assert.equal(matches([overlay], { dev: 9, ino: 200n, gen: GEN_NONE }), true);
  assert.equal(matches([overlay], { dev: 9, ino: 200n, gen: 0 }), true);
  assert.equal(matches([overlay], { dev: 9, ino: 200n, gen: 3 }), false);
});

test("a file whose generation is not known (stat()) is found by inode and device", () => {
  const byStat = { dev: 7, ino: 100n, path: "/usr/bin/curl" };
  assert.equal(matches([byStat], { dev: 7, ino: 100n, gen: 5 }), true);
  assert.equal(matches([byStat], { dev: 7, ino: 100n, gen: 0 }), true);
  assert.equal(matches([byStat], { dev: 8, ino: 100n, gen: 5 }), false, "another device");
});
