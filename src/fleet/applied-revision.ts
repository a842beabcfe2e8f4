// The last key-value revision the policy follower handled and the last it applied, kept in a
// file (written by rename) so that a restarted daemon applies no revision a second time.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface RevisionState {
  bucket: string;
  key: string;
  /** The newest revision taken up (applied or refused): older and equal ones are skipped. */
  handled: number;
  /** The newest revision applied (0: none). */
  applied: number;
  /** The signature time (ms) of the newest signed revision applied (0: none): older ones are refused. */
  signed: number;
  /**
   * The revision whose apply began and has not ended (0: none). Found at a start, the daemon
   * ended during that apply: it is refused, not tried again, so a policy that ends the daemon
   * does not do so at every start.
   */
  started?: number;
}

/**
 * The state for `bucket`/`key`; a file about another bucket or key (or none) starts at 0. Throws
 * for a file that is not such a state: the follower neither trusts nor overwrites it.
 */
export function readRevisionState(path: string, bucket: string, key: string): RevisionState {
  const fresh = { bucket, key, handled: 0, applied: 0, signed: 0 };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return fresh;
    parsed = null;
  }
  if (typeof parsed !== "object" || parsed === null || !("bucket" in parsed))
    throw new Error(
      `${path} is not moat's fleet state: not following (remove the file to start again at revision 0)`,
    );
  const s = parsed as Partial<RevisionState>;
  const n = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);
  // the signature time is the host's, whatever it followed: a move to another bucket or key
  // and back must not let an older signed policy in
  if (s.bucket !== bucket || s.key !== key) return { ...fresh, signed: n(s.signed) };
  return {
    bucket,
    key,
    handled: n(s.handled),
    applied: n(s.applied),
    signed: n(s.signed),
    started: n(s.started),
  };
}

export function writeRevisionState(path: string, state: RevisionState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state) + "\n", { mode: 0o600 });
  renameSync(tmp, path);
}
