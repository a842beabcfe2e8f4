// Pin directories under /sys/fs/bpf, created one level at a time (a recursive mkdir can hang on
// a hidden sysfs path). bpffs is often mounted 1777: a pin directory is root's own (0700, checked
// as src/host/trusted-file.ts checks directories), so no user can swap it for a symlink that a
// removal would follow.
import { readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { trustedDirectory, UnsafeFileError } from "../host/trusted-file.ts";

export const PIN_ROOT = "/sys/fs/bpf/moat";

const WHAT = "pin directory";

/** Creates (0700) or checks a pin directory; throws UnsafeFileError when another user could change it. */
export function ensureDir(path: string): void {
  trustedDirectory(path, { what: WHAT, create: true });
}

/**
 * The pin directory's real path after the same checks, or null when it does not exist. A pin
 * directory that is a symlink, or that others could write, throws UnsafeFileError.
 */
export function checkedPinDir(path: string): string | null {
  try {
    return trustedDirectory(path, { what: WHAT });
  } catch (err) {
    if (err instanceof UnsafeFileError && err.missing) return null;
    throw err;
  }
}

/**
 * Removes a pin directory and everything pinned in it (pins hold no state once unlinked), only
 * through its checked real path: a symlink in its place is refused, never followed.
 */
export function removeTree(path: string): boolean {
  const dir = checkedPinDir(path);
  if (dir === null) return false;
  removeEntries(dir);
  rmdirSync(dir);
  return true;
}

/** Inside a checked directory only root can change: entries are what readdir says (no link followed). */
function removeEntries(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const child = join(dir, entry.name);
    if (entry.isDirectory()) {
      removeEntries(child);
      rmdirSync(child);
    } else unlinkSync(child);
  }
}

/**
 * The name a link is pinned under. bpffs refuses names with a dot (EPERM), which cgroups
 * (/system.slice) and interfaces (eth0.100) have: '%' and '.' are written %25 and %2e.
 */
export function linkPinName(what: string, where: string): string {
  const name = `link_${what}_${where}`;
  return name.replaceAll("%", "%25").replaceAll(".", "%2e");
}
