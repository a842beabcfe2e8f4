// cgroup id <-> cgroup path. The kernel names a cgroup by its id (bpf_get_current_cgroup_id), which
// on cgroup v2 is the inode number of its directory; users and rules name it by path. Paths are
// from the cgroup2 root, as /proc/PID/cgroup's "0::" line writes them.

import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export interface CgroupIndexOptions {
  /** Directory of the cgroup2 mount. */
  mountPoint: string;
  /** A miss rescans the tree at most this often, so unknown ids cannot make moat walk sysfs busily. */
  rescanIntervalMs?: number;
  /** For tests: the clock. */
  now?: () => number;
}

export class CgroupIndex {
  readonly mountPoint: string;
  readonly rescanIntervalMs: number;
  #now: () => number;
  #paths = new Map<bigint, string>();
  #lastScan = -Infinity;

  constructor(options: CgroupIndexOptions) {
    this.mountPoint = options.mountPoint;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 500;
    this.#now = options.now ?? Date.now;
  }

  /** The id of the cgroup at `path` ("/system.slice/x.service"); null if there is none. */
  idOf(path: string): bigint | null {
    try {
      const st = statSync(join(this.mountPoint, path), { bigint: true });
      if (!st.isDirectory()) return null;
      this.#paths.set(st.ino, normalize(path));
      return st.ino;
    } catch {
      return null;
    }
  }

  /** The path of cgroup `id`; a miss rescans (rate-limited) so cgroups made since are found. */
  pathOf(id: bigint): string | null {
    const known = this.#paths.get(id);
    // a cached path may be stale: the cgroup was removed and its inode number reused
    if (known !== undefined && this.idOf(known) === id) return known;
    if (this.#now() - this.#lastScan < this.rescanIntervalMs) return null;
    this.rescan();
    return this.#paths.get(id) ?? null;
  }

  /** Every cgroup now, by id (a fresh walk). */
  all(): Map<bigint, string> {
    this.rescan();
    return new Map(this.#paths);
  }

  /** Walk the whole tree and index every cgroup by id. */
  rescan(): void {
    this.#lastScan = this.#now();
    const paths = new Map<bigint, string>();
    const walk = (path: string): void => {
      let st;
      try {
        st = statSync(join(this.mountPoint, path), { bigint: true });
      } catch {
        return; // removed while walking
      }
      paths.set(st.ino, path);
      let entries;
      try {
        entries = readdirSync(join(this.mountPoint, path), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries)
        if (e.isDirectory()) walk(path === "/" ? `/${e.name}` : `${path}/${e.name}`);
    };
    walk("/");
    this.#paths = paths;
  }
}

const normalize = (path: string): string => "/" + path.split("/").filter(Boolean).join("/");
