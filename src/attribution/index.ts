// Attribution: who owns a socket (process, user, cgroup, container), from /proc, the cgroup2
// tree and the container runtimes' state files. See docs/attribution.md.

export type { ContainerFacts, ProcessFacts } from "./types.ts";
export { Attribution, type AttributionOptions, type KernelOwner } from "./attributor.ts";
export { CgroupIndex, type CgroupIndexOptions } from "./cgroup-index.ts";
export {
  findCgroup2Mount,
  missingCgroup,
  parseMountinfo,
  type Cgroup2Mount,
} from "./cgroup-mount.ts";
export { ContainerDirectory, DOCKER_ROOT, type RuntimeRoots } from "./containers/directory.ts";
export { containerRefOf, type ContainerRef, type Runtime } from "./containers/detect.ts";
export { UserTable } from "./users.ts";
export { recentOwners } from "./recent-owners.ts";
export { kernelDev } from "./kernel-dev.ts";
export { boundSocketOwners, type BoundSocket, type SocketOwner } from "./listeners.ts";
