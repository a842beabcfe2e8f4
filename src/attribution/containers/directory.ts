// Container facts by cgroup path: detect the runtime from the path, read its state files, cache.
// New containers are found on the first lookup that misses (a miss is retried after a short
// while, since the state file may not be written yet); cached ones are re-checked against their
// file's mtime so a rename or a removed container is noticed.
//
// A cgroup's name is only a claim: a user can make `docker-<id>.scope` in a subtree delegated to
// them. Whose state may back the claim is decided by who owns the matched cgroup directory: root's
// (uid 0, outside any user slice) by the system runtimes' state; a user's (or one in their
// user-UID.slice) only by state that uid owns (rootless podman in their home).

import { lstatSync, statSync } from "node:fs";
import { join } from "node:path";
import { findCgroup2Mount } from "../cgroup-mount.ts";
import type { ContainerFacts } from "../types.ts";
import { containerdContainer } from "./containerd.ts";
import { crioContainer } from "./crio.ts";
import { containerRefOf, type Runtime } from "./detect.ts";
import { dockerContainer } from "./docker.ts";
import { podmanContainer } from "./podman.ts";
import type { StateHit, StorageRoot } from "./state-file.ts";

/** Docker's default data root (dockerd --data-root). */
export const DOCKER_ROOT = "/var/lib/docker";

export interface RuntimeRoots {
  /** Docker data roots (default /var/lib/docker). */
  docker?: string[];
  /** containerd runtime v2 task roots (default /run/containerd/io.containerd.runtime.v2.task). */
  containerd?: string[];
  /** containers/storage roots for podman and CRI-O (default /var/lib/containers/storage). */
  containersStorage?: string[];
  /**
   * Home directories whose ~/.local/share/containers/storage hold rootless podman state (for
   * cgroups of that uid: in its user-UID.slice or owned by it, from files that uid owns).
   */
  homes?: () => string[];
}

export interface DirectoryOptions {
  roots?: RuntimeRoots;
  /**
   * The cgroup2 mount, where a container cgroup's owner is checked; default: found in
   * /proc/self/mountinfo. Without one, no cgroup names a container.
   */
  cgroupMount?: string | null;
  /** How long a found container is trusted before its state file's mtime is checked again. */
  revalidateMs?: number;
  /** How long a container id without state files is not looked up again. */
  missRetryMs?: number;
  now?: () => number;
}

interface Entry {
  hit: StateHit | null;
  checkedAt: number;
  mtimeMs: number;
}

const MAX_ENTRIES = 4096;

export class ContainerDirectory {
  #roots: Required<RuntimeRoots>;
  #revalidateMs: number;
  #missRetryMs: number;
  #now: () => number;
  #cgroupMount: string | null;
  #cache = new Map<string, Entry>();

  constructor(options: DirectoryOptions = {}) {
    const r = options.roots ?? {};
    this.#roots = {
      docker: r.docker ?? [DOCKER_ROOT],
      containerd: r.containerd ?? ["/run/containerd/io.containerd.runtime.v2.task"],
      containersStorage: r.containersStorage ?? ["/var/lib/containers/storage"],
      homes: r.homes ?? (() => []),
    };
    this.#revalidateMs = options.revalidateMs ?? 2000;
    this.#missRetryMs = options.missRetryMs ?? 250;
    this.#now = options.now ?? Date.now;
    this.#cgroupMount =
      options.cgroupMount === undefined
        ? (findCgroup2Mount()?.mountPoint ?? null)
        : options.cgroupMount;
  }

  /** The container a cgroup path belongs to; null if none (or its runtime's state is not found). */
  ofCgroup(cgroup: string): ContainerFacts | null {
    const ref = containerRefOf(cgroup);
    if (!ref) return null;
    const uid = this.#claimant(ref.cgroup);
    if (uid === null) return null;
    // keyed by whose state answered: root's answer is never reused for a user's cgroup
    const key = `${ref.runtimes.join(",")}/${ref.id}/${uid}`;
    const now = this.#now();
    const cached = this.#cache.get(key);
    if (cached && this.#fresh(cached, now)) return cached.hit?.container ?? null;
    const hit = this.#find(ref.runtimes, ref.id, uid);
    this.#remember(key, { hit, checkedAt: now, mtimeMs: hit ? mtime(hit.file) : 0 });
    return hit?.container ?? null;
  }

  /**
   * Whose state may name the container of `cgroup` (the matched one): 0 for the system
   * runtimes', another uid for that user's own; null for nobody's.
   */
  #claimant(cgroup: string): number | null {
    const owner = this.#ownerOf(cgroup);
    // a cgroup gone (or unchecked) may have been anyone's
    if (owner === undefined) return null;
    const slice = sliceUid(cgroup);
    if (slice === undefined || slice === owner) return owner;
    // root's cgroup in a user's slice is still that user's; a user's under another's slice name
    // (which they may have made themselves) is no one's
    return owner === 0 ? slice : null;
  }

  /** The uid owning the cgroup's directory; undefined if it is gone or cannot be checked. */
  #ownerOf(cgroup: string): number | undefined {
    if (this.#cgroupMount === null) return undefined;
    try {
      const st = lstatSync(join(this.#cgroupMount, cgroup));
      return st.isDirectory() ? st.uid : undefined;
    } catch {
      return undefined;
    }
  }

  #fresh(entry: Entry, now: number): boolean {
    if (!entry.hit) return now - entry.checkedAt < this.#missRetryMs;
    if (now - entry.checkedAt < this.#revalidateMs) return true;
    if (mtime(entry.hit.file) !== entry.mtimeMs) return false;
    entry.checkedAt = now;
    return true;
  }

  #remember(key: string, entry: Entry): void {
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    // oldest first in insertion order
    if (this.#cache.size > MAX_ENTRIES) this.#cache.delete(this.#cache.keys().next().value ?? "");
  }

  /** `uid` 0: the system runtimes' state; another: only that user's own (rootless podman). */
  #find(runtimes: Runtime[], id: string, uid: number): StateHit | null {
    const system = uid === 0;
    // a home's rootless state is its user's word: it names containers in that user's own
    // cgroups only, and counts only in files that user owns
    const storage: StorageRoot[] = system
      ? this.#roots.containersStorage
      : this.#roots
          .homes()
          .map((h) => ({ path: join(h, ".local/share/containers/storage"), owner: uid }));
    for (const runtime of runtimes) {
      const hit =
        runtime === "docker"
          ? system
            ? dockerContainer(id, this.#roots.docker)
            : null
          : runtime === "containerd"
            ? system
              ? containerdContainer(id, this.#roots.containerd)
              : null
            : runtime === "podman"
              ? podmanContainer(id, storage)
              : crioContainer(id, storage);
      if (hit) return hit;
    }
    return null;
  }
}

/**
 * The uid of the user slice a cgroup is in (/user.slice/user-1000.slice/...): the first one on
 * the path, which systemd made (a user may name cgroups below it as they like).
 */
function sliceUid(cgroup: string): number | undefined {
  const m = /(?:^|\/)user-(\d+)\.slice(?:\/|$)/.exec(cgroup);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** -1 when the file is gone: never equal to a recorded mtime, so a removed container is re-read. */
function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}
