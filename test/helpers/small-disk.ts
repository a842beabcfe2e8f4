// A directory of a test's own on a small tmpfs (a disk that fills), or a plain temporary one
// when no size is given. Closers registered with `closing` run first (what has files open there),
// then it is unmounted and removed, whatever the test's outcome.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SmallDisk {
  dir: string;
  closing: (fn: () => Promise<void> | void) => void;
}

export function smallDisk(
  t: { after: (fn: () => Promise<void>) => void },
  size?: string,
  name = "moat-small-disk",
): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), `${name}-${process.pid}-`));
  const closers: (() => Promise<void> | void)[] = [];
  const mounted = size
    ? spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir])
    : null;
  t.after(async () => {
    for (const close of closers.reverse()) await close();
    if (mounted?.status === 0) spawnSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  if (mounted) assert.equal(mounted.status, 0, "a tmpfs is mounted");
  return { dir, closing: (fn) => void closers.push(fn) };
}
