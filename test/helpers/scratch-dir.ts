// Scratch directories for tests of the files and directories another user could plant or change,
// and a root-only file for a planted symlink to point at: what moat must never write through.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What the root-only file of `victim` holds. */
export const VICTIM_TEXT = "root's own\n";

/** A directory of this test (`moat-TAG-PID-…`, 0755 or `mode`), removed when the test ends. */
export function scratchDir(
  t: { after: (fn: () => void) => void },
  tag: string,
  mode = 0o755,
): string {
  const d = mkdtempSync(join(tmpdir(), `moat-${tag}-${process.pid}-`));
  chmodSync(d, mode);
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A root-only file holding VICTIM_TEXT, in a 0700 directory of `dir`: its path. */
export function victim(dir: string): string {
  const v = join(dir, "victim");
  mkdirSync(v, { mode: 0o700 });
  writeFileSync(join(v, "target"), VICTIM_TEXT, { mode: 0o600 });
  return join(v, "target");
}
