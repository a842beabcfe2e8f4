// Container facts by cgroup path: detect the runtime from the path, read its state files, cache.
// New containers are found on the first lookup that misses (a miss is retried after a short
// while, since the state file may not be written yet); cached ones are re-checked against their
// file's mtime so a rename or a removed container is noticed.

import { statSync } from "node:fs";
import { join } from "node:path";
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
   * cgroups in a user-UID.slice, from files that uid owns).
   */
  homes?: () => string[];
}

export interface DirectoryOptions {
  roots?: RuntimeRoots;
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
  }

  /** The container a cgroup path belongs to; null if none (or its runtime's state is not found). */
  ofCgroup(cgroup: string): ContainerFacts | null {
    const ref = containerRefOf(cgroup);
    if (!ref) return null;
    const uid = sliceUid(cgroup);
    // a user's claim about an id is theirs only: not cached for the system or other users
    const key = `${ref.runtimes.join(",")}/${ref.id}/${uid ?? ""}`;
    const now = this.#now();
    const cached = this.#cache.get(key);
    if (cached && this.#fresh(cached, now)) return cached.hit?.container ?? null;
    const hit = this.#find(ref.runtimes, ref.id, uid);
    this.#remember(key, { hit, checkedAt: now, mtimeMs: hit ? mtime(hit.file) : 0 });
    return hit?.container ?? null;
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

  #find(runtimes: Runtime[], id: string, uid: number | undefined): StateHit | null {
    // a home's rootless state is its user's word: it names containers in that user's own
    // cgroups only, and counts only in files that user owns
    const homes: StorageRoot[] =
      uid === undefined
        ? []
        : this.#roots
            .homes()
            .map((h) => ({ path: join(h, ".local/share/containers/storage"), owner: uid }));
    const storage: StorageRoot[] = [...this.#roots.containersStorage, ...homes];
    for (const runtime of runtimes) {
      const hit =
        runtime === "docker"
          ? dockerContainer(id, this.#roots.docker)
          : runtime === "containerd"
            ? containerdContainer(id, this.#roots.containerd)
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
