// What moat reads from the host for the policy: the one function that accepts a policy (checked
// against this host's files, users and routes, and compiled), what process and interface rules name
// (executables, users, cgroups, links, routes), new cgroups as they appear, whether redirect
// targets are reachable from their clients, name services whose lookups moat cannot attribute,
// the network namespaces of the processes under attach.cgroup, and changes to watched files.
export {
  processDirectories,
  readProcessUniverse,
  readQueriedUniverse,
  universeFingerprint,
  type RouteReader,
} from "./process-universe.ts";
export { watchCgroups } from "./cgroup-watch.ts";
export { watchDirs, type DirWatch, type WatchedDir } from "./dir-watch.ts";
export { networkNamespacesUnder } from "./netns-scan.ts";
export { ipRouteGet, unreachableTargets, type RouteProbe } from "./redirect-reach.ts";
export { watchFiles, type FileWatch } from "./file-watch.ts";
export {
  acceptedOrThrow,
  acceptPolicy,
  acceptPolicyAsync,
  acceptPolicyFile,
  acceptPolicyFileAsync,
  type Acceptance,
  type LoadedPolicy,
  type UniverseReader,
} from "./accept-policy.ts";
export {
  acceptPolicyOffThread,
  afterAcceptWorkerStops,
  locateOffThread,
  startAcceptWorker,
  stopAcceptWorker,
} from "./accept-off-thread.ts";
export { afterRulesLetGo, letRulesGo, rulesSoon } from "./kept-rules.ts";
export {
  checkPolicyFile,
  loadPolicyFile,
  MAX_FILE_BYTES,
  MAX_TOKEN_FILE_BYTES,
  nodeHost,
  setStoreDir,
  DEFAULT_STATE_DIR,
  readPolicyFileText,
  readPolicyFileTextAsync,
} from "./policy-files.ts";
export { API_TLS_CERT, API_TLS_KEY } from "./file-checks.ts";
export { useCompileCache } from "./compile-cache.ts";
export {
  checkTrustedPath,
  openTrustedForWrite,
  readTrustedFile,
  readTrustedFileAsync,
  trustedDirectory,
  UnsafeFileError,
  writeTrustedFileAtomic,
} from "./trusted-file.ts";
export {
  firstNameUse,
  hostsSources,
  nameServiceDiagnostics,
  nameServiceWarnings,
  type NameServiceFiles,
} from "./name-service.ts";
export {
  bootId,
  DEFAULT_DECISIONS,
  readDecisionsFile,
  type DecisionsRead,
} from "./decisions-file.ts";
