// Links pinned under the pin root, replaced without a gap (docs/datapath.md, "Restart and
// upgrade"): a link a previous daemon pinned gets the new program in place (bpf_link_update,
// for XDP, tcx and cgroup links alike); a hook the new daemon no longer uses is detached only
// after every new link is attached.
import { existsSync, readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { native } from "./addon.ts";
import type { BpfLink, BpfProgram } from "./native.d.ts";

export interface PinnedAttach {
  link: BpfLink;
  /** The pinned link of a previous daemon, now running `program`. */
  updated: boolean;
  /** Why the hook was not updated in place, when it could not be. */
  note?: string;
}

/**
 * `program` on the hook pinned at `pin`: the pinned link updated in place, else a new link from
 * `attach()` pinned there. When an update is refused, a hook that takes several programs
 * (`coexist`: tcx, cgroup) gets the new link before the old one goes; XDP takes one program per
 * interface, so its old link goes first.
 */
export function attachPinned(
  pin: string | null,
  program: BpfProgram,
  attach: () => BpfLink,
  coexist: boolean,
): PinnedAttach {
  if (!pin) return { link: attach(), updated: false };
  if (!existsSync(pin)) {
    const link = attach();
    if (link.fd >= 0) link.pin(pin);
    return { link, updated: false };
  }
  const old = native().BpfLink.openPinned(pin);
  try {
    old.update(program);
    return { link: old, updated: true };
  } catch (err) {
    const why = (err as Error).message;
    const release = () => {
      old.unpin();
      old.destroy();
    };
    let link: BpfLink;
    if (coexist) {
      link = attach();
      release();
    } else {
      release();
      link = attach();
    }
    if (link.fd >= 0) link.pin(pin);
    const order = coexist
      ? "attached beside it, then the old one detached"
      : "detached, then attached";
    return { link, updated: false, note: `${pin}: link update refused (${why}); ${order}` };
  }
}

/**
 * `attach()`'s new link pinned at `pin`, for hooks whose links cannot be updated in place (BTF
 * tracepoints): attached beside a previous daemon's pinned link, which is then detached, so the
 * hook never goes without a program.
 */
export function attachPinnedBeside(pin: string | null, attach: () => BpfLink): PinnedAttach {
  const link = attach();
  if (!pin) return { link, updated: false };
  if (existsSync(pin)) {
    try {
      const old = native().BpfLink.openPinned(pin);
      old.unpin();
      old.destroy();
    } catch {
      unlinkSync(pin); // not a link: nothing to detach
    }
  }
  if (link.fd >= 0) link.pin(pin);
  return { link, updated: false };
}

/** Detaches every link pinned in `root` but not in `keep` (hooks this daemon does not use). */
export function detachStaleLinks(root: string, keep: Set<string>): string[] {
  if (!existsSync(root)) return [];
  const gone: string[] = [];
  for (const entry of readdirSync(root)) {
    const path = join(root, entry);
    if (!entry.startsWith("link_") || keep.has(path)) continue;
    try {
      const link = native().BpfLink.openPinned(path);
      link.unpin();
      link.destroy();
    } catch {
      unlinkSync(path); // not a link: nothing to detach
    }
    gone.push(path);
  }
  return gone;
}
