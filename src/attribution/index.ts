// Attribution: who owns a socket (process, user, cgroup, container), from /proc, the cgroup2
// tree and the container runtimes' state files. See docs/attribution.md.

import { Attribution } from "./attributor.ts";
import type { ContainerFacts, ProcessFacts } from "./types.ts";

export type { ContainerFacts, ProcessFacts } from "./types.ts";
export { Attribution, type AttributionOptions, type KernelOwner } from "./attributor.ts";
export { CgroupIndex, type CgroupIndexOptions } from "./cgroup-index.ts";
export { findCgroup2Mount, parseMountinfo, type Cgroup2Mount } from "./cgroup-mount.ts";
export { ContainerDirectory, DOCKER_ROOT, type RuntimeRoots } from "./containers/directory.ts";
export { containerRefOf, type ContainerRef, type Runtime } from "./containers/detect.ts";
export { UserTable } from "./users.ts";
export { kernelDev } from "./kernel-dev.ts";

let shared: Attribution | undefined;
/** One instance with the host's defaults, made on first use. */
const host = (): Attribution => (shared ??= new Attribution());

/** The process `pid` (name, executable, user, cgroup, container); null if it does not exist. */
export const processFacts = (pid: number): ProcessFacts | null => host().processFacts(pid);

/** The cgroup v2 id (the directory's inode number) of a cgroup path; null if there is none. */
export const cgroupIdOf = (path: string): bigint | null => host().cgroupIdOf(path);

/** The cgroup path of a cgroup v2 id; null if no such cgroup (after a rate-limited rescan). */
export const cgroupPathOf = (id: bigint): string | null => host().cgroupPathOf(id);

/** The container of a cgroup path; null if it is not a container's (or its state is not found). */
export const containerOf = (cgroup: string): ContainerFacts | null => host().containerOf(cgroup);
