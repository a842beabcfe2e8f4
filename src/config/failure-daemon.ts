// `failure.daemon` (docs/policy.md, "failure"): what the kernel does when the daemon stops or
// dies. `enforce` (the default) keeps judging with the last policy; `allow` lets everything
// through once the daemon's heartbeat is late, until a daemon runs again.
import { StringEnum } from "./schema-helpers.ts";

export const DAEMON_FAILURES = ["enforce", "allow"] as const;
export type DaemonFailure = (typeof DAEMON_FAILURES)[number];

export const FailureDaemonSchema = StringEnum(
  DAEMON_FAILURES,
  "when the daemon dies: enforce the last policy (default), or allow everything",
);

/** The policy's choice, with its default. */
export function daemonFailure(doc: { failure?: { daemon?: DaemonFailure } }): DaemonFailure {
  return doc.failure?.daemon ?? "enforce";
}
