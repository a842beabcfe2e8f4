// `make install` from a tree a non-root user built (their clone, their build): what it installs,
// which root then runs, is root's and writable by root only, never the builder's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT } from "../helpers/paths.ts";

const NOBODY = 65534;

/** Every path under `dir` (itself included). */
function walk(dir: string): string[] {
  return [
    dir,
    ...readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
    ),
  ];
}

test("the installed tree is root's and not writable by others, whoever built it", (t) => {
  const scratch = mkdtempSync(join(tmpdir(), `moat-install-owner-${process.pid}-`));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  chmodSync(scratch, 0o755);
  const src = join(scratch, "clone");
  const put = (path: string, text = "x\n") => {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), text);
  };
  for (const p of [
    "build/bpf/moat.bpf.o",
    "build/bpf/map_count.bpf.o",
    "build/bpf/file_ids.bpf.o",
    "native/build/Release/moat_native.node",
    "build/dist/cli-main.mjs",
    "build/dist/worker.mjs",
    "build/cli/main.mjs",
    "build/cli/BUILT",
    "build/web/index.html",
    "build/man/moat.1",
    "build/completion/moat.bash",
    "build/completion/_moat",
    "data/doh-resolvers.txt",
    "schema/policy.json",
    "examples/default.yaml",
    "docs/install.md",
    "README.md",
    "packaging/moat.service",
    "packaging/logrotate",
  ])
    put(p);
  put("package.json", "{}\n");
  put("package-lock.json", '{"packages": {}}\n');
  mkdirSync(join(src, "scripts"));
  copyFileSync(join(ROOT, "scripts/install.sh"), join(src, "scripts/install.sh"));
  chmodSync(join(src, "scripts/install.sh"), 0o755);
  // the builder's files, some group-writable (umask 002)
  assert.equal(spawnSync("chown", ["-R", `${NOBODY}:${NOBODY}`, src]).status, 0);
  assert.equal(spawnSync("chmod", ["-R", "g+w", join(src, "build"), join(src, "docs")]).status, 0);

  const dest = join(scratch, "stage");
  const r = spawnSync(join(src, "scripts/install.sh"), ["install"], {
    encoding: "utf8",
    env: { ...process.env, NODE_BIN: process.execPath, DESTDIR: dest },
  });
  assert.equal(r.status, 0, r.stderr);
  const lib = join(dest, "usr/lib/moat");
  const bad = walk(lib).filter((p) => {
    const st = lstatSync(p);
    return st.uid !== 0 || st.gid !== 0 || (!st.isSymbolicLink() && (st.mode & 0o022) !== 0);
  });
  assert.deepEqual(bad, [], "installed files the builder owns or others can write");
});
