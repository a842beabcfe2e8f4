// The names a fleet shares: this host's name, its subject and its keys in the bucket.
import { hostname } from "node:os";

/** The machine's host name as a subject token and key part: other characters than [A-Za-z0-9_-] as _. */
export function defaultHostName(): string {
  return hostname().replace(/[^A-Za-z0-9_-]/g, "_") || "unknown";
}

/** The host's policy key and status key in the bucket. */
export const policyKey = (host: string): string => `policy.${host}`;
export const statusKey = (host: string): string => `status.${host}`;

/** The subject a host publishes its events to. */
export const eventSubject = (prefix: string, host: string): string => `${prefix}.${host}`;

/** The stream and bucket the CLI reads unless told otherwise (docs/fleet.md sets them up so). */
export const DEFAULT_STREAM = "MOAT_EVENTS";
export const DEFAULT_BUCKET = "moat-policy";
export const DEFAULT_SUBJECT = "moat.events";

/**
 * How long a host publishes an event again (same message id) before it drops it: the events
 * stream's duplicate window must be at least this long for a retry to be stored once.
 */
export const RETRY_HORIZON_MS = 30_000;

/** What a host writes to its status key after each revision it handled. */
export interface FleetStatus {
  host: string;
  /** The revision this report is about. */
  revision: number;
  /** "applied", or "refused" (the running policy stays). */
  result: "applied" | "refused";
  /** The last revision applied (the policy running now came from it), 0 if none. */
  applied_revision: number;
  /** The policy generation running after it, and the running policy's sha256. */
  generation: number;
  /** KEY:LINE:COL path: message, for a refused policy. */
  errors: string[];
  time: string;
}
