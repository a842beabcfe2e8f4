// The last key-value revision the policy follower handled and the last it applied, kept in a
// file (written by rename) so that a restarted daemon applies no revision a second time.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
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
  /**
   * The creation time of the bucket's stream, as the server gives it (none: not known yet): a
   * bucket made again has another, and its revisions are taken up from the start.
   */
  stream?: string;
}

/**
 * The state for `bucket`/`key`; a file about another bucket or key (or none) starts at 0. Throws
 * for a file that is not such a state: the follower neither trusts nor overwrites it.
 */
export function readRevisionState(path: string, bucket: string, key: string): RevisionState {
  const fresh = { bucket, key, handled: 0, applied: 0, signed: 0 };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readOwnFile(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return fresh;
    if (err instanceof UnsafeStateError) throw err;
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
    ...(typeof s.stream === "string" ? { stream: s.stream } : {}),
  };
}

export function writeRevisionState(path: string, state: RevisionState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // O_CREAT|O_EXCL|O_NOFOLLOW under a random name: nothing planted there is written through
  const tmp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    try {
      writeFileSync(fd, JSON.stringify(state) + "\n");
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export class UnsafeStateError extends Error {}

/** A revision state bigger than this is not moat's. */
const MAX_STATE_BYTES = 64 * 1024;

/**
 * The file's text if root (or moat's own user) wrote it and no one else can: a planted state
 * would make the follower skip revisions. (src/fleet may not import src/host's trusted-file.ts;
 * these are its checks of the file itself.) ENOENT passes through.
 */
function readOwnFile(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    const unsafe = (why: string) => new UnsafeStateError(`fleet state file ${path}: ${why}`);
    if (!st.isFile()) throw unsafe("is not a regular file");
    if (st.uid !== 0 && st.uid !== process.geteuid?.())
      throw unsafe(`is owned by uid ${st.uid}, not root`);
    if ((st.mode & 0o022) !== 0) throw unsafe("is writable by group or others; chmod go-w it");
    if (st.size > MAX_STATE_BYTES) throw unsafe("is larger than a revision state");
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}
