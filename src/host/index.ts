// What moat reads from the host for the policy: what process and interface rules name
// (executables, users, cgroups, links, routes), new cgroups as they appear, whether redirect
// targets are reachable from their clients, and changes to watched files.
export { readProcessUniverse, universeFingerprint } from "./process-universe.ts";
export { watchCgroups } from "./cgroup-watch.ts";
export { ipRouteGet, unreachableTargets, type RouteProbe } from "./redirect-reach.ts";
export { watchFiles, type FileWatch } from "./file-watch.ts";
