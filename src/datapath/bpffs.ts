// Pin directories under /sys/fs/bpf, created and removed one level at a time
// (a recursive mkdir can hang on a hidden sysfs path).
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";

export const PIN_ROOT = "/sys/fs/bpf/moat";

export function ensureDir(path: string): void {
  const parts = path.split("/").filter(Boolean);
  let at = "";
  for (const part of parts) {
    at += `/${part}`;
    if (!existsSync(at)) mkdirSync(at);
  }
}

/** Removes a pin directory and everything pinned in it (pins hold no state once unlinked). */
export function removeTree(path: string): void {
  if (!existsSync(path)) return;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) removeTree(child);
    else unlinkSync(child);
  }
  rmdirSync(path);
}
