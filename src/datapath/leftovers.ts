// What a daemon that did not stop cleanly (SIGKILL, a crash, power loss of the process) leaves in
// bpffs: pinned links that keep its programs attached, and pinned maps. A clean stop removes
// them itself (Datapath.stop); `moat cleanup` removes them after the fact.
import { existsSync } from "node:fs";
import { removeTree } from "./bpffs.ts";
import { detachStaleLinks } from "./pinned-links.ts";

export interface Leftovers {
  /** The pinned links detached. */
  links: string[];
  /** Whether the pin directory was there (and is now gone). */
  removed: boolean;
}

/** Detaches every link pinned in `pinRoot`, then removes the directory and every pin in it. */
export function removeLeftoverPins(pinRoot: string): Leftovers {
  if (!existsSync(pinRoot)) return { links: [], removed: false };
  const links = detachStaleLinks(pinRoot, new Set());
  removeTree(pinRoot);
  return { links, removed: true };
}
