// What a daemon that did not stop cleanly (SIGKILL, a crash, power loss of the process) leaves in
// bpffs: pinned links that keep its programs attached, and pinned maps. A clean stop removes
// them itself (Datapath.stop); `moat cleanup` removes them after the fact.
import { checkedPinDir, removeTree } from "./bpffs.ts";
import { detachStaleLinks } from "./pinned-links.ts";

export interface Leftovers {
  /** The pinned links detached. */
  links: string[];
  /** Whether the pin directory was there (and is now gone). */
  removed: boolean;
}

/**
 * Detaches every link pinned in `pinRoot`, then removes the directory and every pin in it. A pin
 * directory that is a symlink or that others could write throws UnsafeFileError, untouched.
 */
export function removeLeftoverPins(pinRoot: string): Leftovers {
  const dir = checkedPinDir(pinRoot);
  if (dir === null) return { links: [], removed: false };
  const links = detachStaleLinks(dir, new Set());
  removeTree(dir);
  return { links, removed: true };
}
