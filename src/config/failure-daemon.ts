// `failure.daemon` (docs/policy.md, "failure"): what the kernel does when the daemon stops or
// dies. `enforce` (the default) keeps judging with the last policy; `allow` lets everything
// through once the daemon's heartbeat is late, until a daemon runs again.
export const DAEMON_FAILURES = ["enforce", "allow"] as const;
export type DaemonFailure = (typeof DAEMON_FAILURES)[number];

/** The policy's choice, with its default. */
export function daemonFailure(doc: { failure?: { daemon?: DaemonFailure } }): DaemonFailure {
  return doc.failure?.daemon ?? "enforce";
}
