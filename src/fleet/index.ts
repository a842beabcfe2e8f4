// The fleet: moat hosts sharing a NATS JetStream cluster, each publishing its events to a stream
// and following its policy from a key-value bucket (docs/fleet.md).
export {
  connectFleet,
  connectionOptions,
  natsTls,
  type FleetConnectOptions,
} from "./connection.ts";
export {
  DEFAULT_BUCKET,
  DEFAULT_STREAM,
  DEFAULT_SUBJECT,
  defaultHostName,
  eventSubject,
  policyKey,
  RETRY_HORIZON_MS,
  statusKey,
  type FleetStatus,
} from "./names.ts";
export {
  PolicyFollower,
  type ApplyOutcome,
  type PolicyFollowerOptions,
} from "./policy-follower.ts";
export { readRevisionState, type RevisionState } from "./applied-revision.ts";
export { signPolicy, unsigned, verifyPolicy, type SignedFor } from "./signature.ts";
