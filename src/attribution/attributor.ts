// Who owns a socket, put together: /proc for the process, the cgroup index for cgroup ids, the
// container directory for containers, /etc/passwd for user names. One instance per daemon; every
// root is configurable so tests can use a temp dir.

import { CgroupIndex } from "./cgroup-index.ts";
import { findCgroup2Mount } from "./cgroup-mount.ts";
import { ContainerDirectory, type RuntimeRoots } from "./containers/directory.ts";
import { readProc } from "./proc.ts";
import { runsRecordedExe } from "./recorded-exe.ts";
import type { ContainerFacts, ProcessFacts } from "./types.ts";
import { UserTable } from "./users.ts";

export interface AttributionOptions {
  /** Default /proc. */
  procRoot?: string;
  /** Default /etc/passwd. */
  passwdFile?: string;
  /** The cgroup2 mount; default: found in /proc/self/mountinfo. */
  cgroupMount?: string;
  /** Runtime state roots; rootless podman homes default to the users' home directories. */
  roots?: RuntimeRoots;
  cgroupRescanIntervalMs?: number;
  containerRevalidateMs?: number;
  containerMissRetryMs?: number;
}

/** What the kernel hands over with a socket event, cheaply (bpf_get_current_*). */
export interface KernelOwner {
  pid: number;
  uid: number;
  cgroupId: bigint;
  /** comm as the kernel saw it. */
  comm: string;
  /** The executable's inode and device (MKDEV), when the kernel read them (rules name processes or hosts). */
  exeIno?: bigint;
  exeDev?: number;
  /** The inode's generation, read with them (0: not known; bpf/include/exe_file.h). */
  exeGen?: number;
}

export class Attribution {
  readonly users: UserTable;
  /** null when no cgroup2 hierarchy is mounted. */
  readonly cgroups: CgroupIndex | null;
  readonly containers: ContainerDirectory;
  #procRoot: string;

  constructor(options: AttributionOptions = {}) {
    this.#procRoot = options.procRoot ?? "/proc";
    this.users = new UserTable(options.passwdFile);
    const mount = options.cgroupMount ?? findCgroup2Mount()?.mountPoint;
    this.cgroups = mount
      ? new CgroupIndex({
          mountPoint: mount,
          ...(options.cgroupRescanIntervalMs !== undefined
            ? { rescanIntervalMs: options.cgroupRescanIntervalMs }
            : {}),
        })
      : null;
    const users = this.users;
    this.containers = new ContainerDirectory({
      roots: { homes: () => users.homes(), ...options.roots },
      cgroupMount: mount ?? null,
      ...(options.containerRevalidateMs !== undefined
        ? { revalidateMs: options.containerRevalidateMs }
        : {}),
      ...(options.containerMissRetryMs !== undefined
        ? { missRetryMs: options.containerMissRetryMs }
        : {}),
    });
  }

  /** The process `pid` as /proc shows it now; null if it does not exist (or has exited). */
  processFacts(pid: number): ProcessFacts | null {
    const p = readProc(pid, this.#procRoot);
    if (!p) return null;
    return {
      pid: p.pid,
      name: p.name,
      path: p.path,
      user: p.uid,
      userName: this.users.nameOf(p.uid),
      cgroup: p.cgroup,
      container: this.containers.ofCgroup(p.cgroup),
    };
  }

  /**
   * An event's owner from what the kernel gave, completed from /proc while the process lives.
   * The kernel's uid and cgroup win (the socket was made with them); a process that has exited
   * keeps what the kernel said, with path "" (unknown), and so does one that no longer runs the
   * executable the kernel recorded (it exec'd another since, or repointed /proc/self/exe).
   */
  attribute(owner: KernelOwner): ProcessFacts {
    const live = readProc(owner.pid, this.#procRoot);
    const cgroup = this.cgroupPathOf(owner.cgroupId) ?? live?.cgroup ?? "/";
    return {
      pid: owner.pid,
      name: owner.comm || live?.name || "",
      path: live && runsRecordedExe(owner, this.#procRoot) ? live.path : "",
      user: owner.uid,
      userName: this.users.nameOf(owner.uid),
      cgroup,
      container: this.containers.ofCgroup(cgroup),
    };
  }

  cgroupPathOf(id: bigint): string | null {
    return this.cgroups?.pathOf(id) ?? null;
  }

  cgroupIdOf(path: string): bigint | null {
    return this.cgroups?.idOf(path) ?? null;
  }

  containerOf(cgroup: string): ContainerFacts | null {
    return this.containers.ofCgroup(cgroup);
  }
}
