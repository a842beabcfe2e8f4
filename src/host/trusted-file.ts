// Opens the files moat trusts (policy and set files, API token files, the audit log, the event
// history) only where no one but root could have put them, in the spirit of sshd's StrictModes:
//  - every directory on the way is owned by root (or by the user running moat) and not writable
//    by group or others; a sticky world-writable directory such as /tmp is accepted as an
//    ancestor (others cannot rename or delete root's entries in it), never as the file's own;
//  - a symlink is followed only if its owner is trusted (it then lies in a trusted directory, or
//    in a sticky one where only its owner could have made it): Kubernetes ConfigMap mounts work,
//    a link planted by another user does not;
//  - the file itself is opened with O_NOFOLLOW|O_NONBLOCK and checked through its descriptor
//    (fstat: a regular file, a trusted owner, not writable by others, under the size limit), so
//    a FIFO cannot hang the reader and /dev/zero cannot exhaust its memory;
//  - the daemon reads the contents in chunks on libuv's thread pool (readTrustedFileAsync), so a
//    large set file never holds its event loop;
//  - a directory moat keeps its own entries in (pins, the API socket) must be root's and not
//    writable by others even when sticky (trustedDirectory); a state file replaced whole goes
//    through a temporary file made O_EXCL|O_NOFOLLOW under a random name (writeTrustedFileAtomic).
import {
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  read,
  readlinkSync,
  readSync,
} from "node:fs";
import { closeSync, fchmodSync, renameSync, rmSync, writeFileSync, type Stats } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";

/** "WHAT PATH: REASON"; `reason` alone for messages that name the file already. */
export class UnsafeFileError extends Error {
  readonly code = "EUNSAFEFILE";
  readonly reason: string;
  /** The file (or a directory on the way) does not exist: no one planted anything. */
  readonly missing: boolean;
  constructor(what: string, path: string, reason: string, missing = false) {
    super(`${what} ${path}: ${reason}`);
    this.name = "UnsafeFileError";
    this.reason = reason;
    this.missing = missing;
  }
}

export interface TrustedReadOptions {
  /** Names the file in messages: "set file", "API token file"... */
  what: string;
  /** A larger file is refused (bytes). */
  maxBytes: number;
  /** The file holds secrets: it must not be readable by group or others either. */
  secret?: boolean;
  /** The file's bytes as text; absent: UTF-8, a byte that is not UTF-8 read as U+FFFD. */
  decode?: (bytes: Uint8Array) => string;
}

export interface TrustedWriteOptions {
  what: string;
  /** Missing directories are created (0700) inside trusted ones. */
  createDirs?: boolean;
}

/** The sticky bit: only an entry's owner may rename or delete it. */
const STICKY = 0o1000;
/** Symlinks followed in one path at most (the kernel's own limit). */
const MAX_LINKS = 40;
const FILE_TYPES: [(st: Stats) => boolean, string][] = [
  [(st) => st.isFIFO(), "a FIFO"],
  [(st) => st.isCharacterDevice(), "a character device"],
  [(st) => st.isBlockDevice(), "a block device"],
  [(st) => st.isSocket(), "a socket"],
  [(st) => st.isDirectory(), "a directory"],
];

/** Root, and the user moat runs as (a user checking their own files with `moat check`). */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

function kindOf(st: Stats): string {
  return FILE_TYPES.find(([is]) => is(st))?.[1] ?? "not a regular file";
}

function ownerText(uid: number): string {
  return uid === 0 ? "root" : `uid ${uid}`;
}

/**
 * Walks `path` from / checking every directory and symlink; returns the real directory (checked)
 * and the final name, which is not a symlink (it may not exist).
 */
function resolveTrusted(
  path: string,
  what: string,
  createDirs: boolean,
  directory = false,
): string {
  const unsafe = (why: string, missing = false) => new UnsafeFileError(what, path, why, missing);
  let pending = resolve(path).split("/").filter(Boolean);
  let dir = "/";
  checkDirectory("/", lstatSync("/"), unsafe);
  let links = 0;
  for (;;) {
    const name = pending.shift();
    if (name === undefined) {
      if (directory && dir !== "/") {
        checkOwnDirectory(dir, lstatSync(dir), unsafe);
        return dir;
      }
      throw unsafe(directory ? "names /" : "names a directory, not a file");
    }
    if (name === ".") continue;
    if (name === "..") {
      dir = resolve(dir, ".."); // every ancestor of `dir` was checked on the way down
      continue;
    }
    const full = join(dir, name);
    const last = pending.length === 0;
    let st: Stats;
    try {
      st = lstatSync(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw unsafe((err as Error).message);
      if (last && !directory) return finalDirectory(dir, full, unsafe);
      if (!createDirs) throw unsafe(`${full} does not exist`, true);
      mkdirSync(full, { mode: 0o700 });
      st = lstatSync(full);
    }
    if (last && directory) {
      // the directory itself: never a symlink, and no one else may add, rename or remove in it
      if (st.isSymbolicLink()) throw unsafe("is a symlink; refusing to follow it");
      if (!st.isDirectory()) throw unsafe("is not a directory");
      checkOwnDirectory(full, st, unsafe);
      return full;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw unsafe("too many levels of symbolic links");
      if (!trustedOwner(st.uid))
        throw unsafe(
          `${full} is a symlink owned by ${ownerText(st.uid)}, not root; refusing to follow it`,
        );
      const target = readlinkSync(full);
      if (isAbsolute(target)) dir = "/";
      pending = [...target.split("/").filter(Boolean), ...pending];
      continue;
    }
    if (last) return finalDirectory(dir, full, unsafe);
    if (!st.isDirectory()) throw unsafe(`${full} is not a directory`);
    checkDirectory(full, st, unsafe);
    dir = full;
  }
}

function checkDirectory(dir: string, st: Stats, unsafe: (why: string) => Error): void {
  if (!trustedOwner(st.uid))
    throw unsafe(`directory ${dir} is owned by ${ownerText(st.uid)}, not root`);
  const sticky = (st.mode & STICKY) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky)
    throw unsafe(
      `directory ${dir} is writable by group or others (mode ${octal(st.mode)}); make it 0755 or stricter`,
    );
}

/** A directory moat keeps its own entries in: sticky or not, group or others may not write. */
function checkOwnDirectory(dir: string, st: Stats, unsafe: (why: string) => Error): void {
  if (!trustedOwner(st.uid))
    throw unsafe(`directory ${dir} is owned by ${ownerText(st.uid)}, not root`);
  if ((st.mode & 0o022) !== 0)
    throw unsafe(
      `directory ${dir} is writable by group or others (mode ${octal(st.mode)}); make it 0700 or 0755`,
    );
}

/** The file's own directory: a sticky world-writable one is not enough here. */
function finalDirectory(dir: string, full: string, unsafe: (why: string) => Error): string {
  const st = lstatSync(dir);
  if ((st.mode & 0o022) !== 0)
    throw unsafe(
      `its directory ${dir} is writable by group or others (mode ${octal(st.mode)}); keep it in a directory only root can write`,
    );
  return full;
}

function checkOpened(fd: number, path: string, what: string, secret: boolean): Stats {
  const st = fstatSync(fd);
  const unsafe = (why: string) => new UnsafeFileError(what, path, why);
  if (!st.isFile()) throw unsafe(`is ${kindOf(st)}; only a regular file is read`);
  if (!trustedOwner(st.uid)) throw unsafe(`is owned by ${ownerText(st.uid)}, not root`);
  if ((st.mode & 0o022) !== 0)
    throw unsafe(`is writable by group or others (mode ${octal(st.mode)}); chmod go-w it`);
  if (secret && (st.mode & 0o077) !== 0)
    throw unsafe(`is readable by group or others (mode ${octal(st.mode)}); chmod 600 it`);
  return st;
}

function tooLarge(path: string, what: string, maxBytes: number): UnsafeFileError {
  return new UnsafeFileError(what, path, `is larger than the limit of ${formatBytes(maxBytes)}`);
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  if (n >= 2 ** 10 && n % 2 ** 10 === 0) return `${n / 2 ** 10} KiB`;
  return `${n} bytes`;
}

// (libuv adds O_CLOEXEC to every open)
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Runs the path checks and opens the file for reading; the caller closes the descriptor. */
function openForRead(path: string, options: TrustedReadOptions): { fd: number; size: number } {
  const full = resolveTrusted(path, options.what, false);
  let fd: number;
  try {
    fd = openSync(full, READ_FLAGS);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    throw new UnsafeFileError(options.what, path, errnoText(err), missing);
  }
  try {
    const st = checkOpened(fd, path, options.what, options.secret ?? false);
    if (st.size > options.maxBytes) throw tooLarge(path, options.what, options.maxBytes);
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The file's text, after every check above (throws UnsafeFileError saying what is wrong). */
export function readTrustedFile(path: string, options: TrustedReadOptions): string {
  const { fd, size } = openForRead(path, options);
  try {
    const reader = new BoundedReader(path, options, size);
    while (reader.take(readSync(fd, reader.buf, reader.got, reader.room, null)));
    return reader.text();
  } finally {
    closeSync(fd);
  }
}

/** A read of a large file gives the event loop a turn after each chunk this size. */
const CHUNK = 512 * 1024;

/**
 * readTrustedFile off the event loop: the same checks (fast, on the loop), then the contents read
 * in chunks on libuv's thread pool, so a set file of tens of megabytes never holds the loop.
 */
export async function readTrustedFileAsync(
  path: string,
  options: TrustedReadOptions,
): Promise<string> {
  const { fd, size } = openForRead(path, options);
  try {
    const reader = new BoundedReader(path, options, size);
    while (reader.take(await readChunk(fd, reader.buf, reader.got, Math.min(reader.room, CHUNK))));
    return reader.text();
  } finally {
    closeSync(fd);
  }
}

function readChunk(fd: number, buf: Buffer, at: number, length: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buf, at, length, null, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** A file's bytes up to the size limit; one byte more than allowed tells that it grew since fstat. */
class BoundedReader {
  readonly buf: Buffer;
  got = 0;
  private readonly path: string;
  private readonly options: TrustedReadOptions;
  constructor(path: string, options: TrustedReadOptions, size: number) {
    this.path = path;
    this.options = options;
    this.buf = Buffer.allocUnsafe(Math.min(size, options.maxBytes) + 1);
  }
  get room(): number {
    return this.buf.length - this.got;
  }
  /** Counts `n` bytes read; false once the file is read. */
  take(n: number): boolean {
    if (n === 0) return false;
    this.got += n;
    if (this.got < this.buf.length) return true;
    if (this.got > this.options.maxBytes)
      throw tooLarge(this.path, this.options.what, this.options.maxBytes);
    return false;
  }
  text(): string {
    const { decode } = this.options;
    return decode ? decode(this.buf.subarray(0, this.got)) : this.buf.toString("utf8", 0, this.got);
  }
}

/**
 * Opens (creating, 0600) a file moat writes: the audit log (append) or the event history (which
 * SQLite then opens by the returned real path). Checked and chmod-ed through the descriptor.
 */
export function openTrustedForWrite(
  path: string,
  options: TrustedWriteOptions,
): { fd: number; path: string } {
  const full = resolveTrusted(path, options.what, options.createDirs ?? false);
  const flags =
    constants.O_WRONLY |
    constants.O_APPEND |
    constants.O_CREAT |
    constants.O_NOFOLLOW |
    constants.O_NONBLOCK;
  let fd: number;
  try {
    // opening a FIFO for writing fails with ENXIO, which says nothing: name what it is
    const st = lstatSync(full, { throwIfNoEntry: false });
    if (st && !st.isFile())
      throw new UnsafeFileError(
        options.what,
        path,
        `is ${kindOf(st)}; only a regular file is used`,
      );
    fd = openSync(full, flags, 0o600);
  } catch (err) {
    if (err instanceof UnsafeFileError) throw err;
    throw new UnsafeFileError(options.what, path, errnoText(err));
  }
  try {
    checkOpened(fd, path, options.what, false);
    fchmodSync(fd, 0o600);
    return { fd, path: full };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * What openTrustedForWrite or readTrustedFile would refuse, without creating or changing anything
 * (for `moat check`): a missing file or directory is fine for a file moat writes (it creates
 * them), an error for one it reads. Throws UnsafeFileError.
 */
export function checkTrustedPath(
  path: string,
  options: { what: string; write: boolean; maxBytes?: number; secret?: boolean },
): void {
  let full: string;
  try {
    full = resolveTrusted(path, options.what, false);
  } catch (err) {
    // a directory moat would create is not a problem of the path
    if (options.write && err instanceof UnsafeFileError && err.reason.endsWith("does not exist"))
      return;
    throw err;
  }
  if (options.write) {
    const st = lstatSync(full, { throwIfNoEntry: false });
    if (!st) return;
    const unsafe = (why: string) => new UnsafeFileError(options.what, path, why);
    if (!st.isFile()) throw unsafe(`is ${kindOf(st)}; only a regular file is used`);
    if (!trustedOwner(st.uid)) throw unsafe(`is owned by ${ownerText(st.uid)}, not root`);
    if ((st.mode & 0o022) !== 0)
      throw unsafe(`is writable by group or others (mode ${octal(st.mode)}); chmod go-w it`);
    return;
  }
  const { fd } = openForRead(path, {
    what: options.what,
    maxBytes: options.maxBytes ?? Number.MAX_SAFE_INTEGER,
    secret: options.secret ?? false,
  });
  closeSync(fd);
}

/** "ELOOP: too many symbolic links encountered, open 'x'" -> "too many symbolic links encountered". */
function errnoText(err: unknown): string {
  return (err as Error).message.replace(/^E[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
}

/**
 * A directory moat keeps its own entries in (the pin directory, the API socket's, where a state
 * file's temporary copy is made): every directory on the way checked as for a file, this one a
 * real directory (not a symlink) of root's that group and others cannot write, even with the
 * sticky bit. With `create`, missing directories are made 0700. Returns its real path; throws
 * UnsafeFileError (`missing` when it does not exist).
 */
export function trustedDirectory(
  path: string,
  options: { what: string; create?: boolean },
): string {
  return resolveTrusted(path, options.what, options.create ?? false, true);
}

/**
 * Replaces a state file moat writes whole (0600) by rename: the temporary file is made with
 * O_CREAT|O_EXCL|O_NOFOLLOW under a random name in the file's checked directory, so nothing
 * planted there is written through. Missing directories are created 0700.
 */
export function writeTrustedFileAtomic(
  path: string,
  text: string | Uint8Array,
  options: { what: string },
): void {
  const full = resolveTrusted(path, options.what, true);
  const tmp = join(dirname(full), `.${basename(full)}.${randomBytes(8).toString("hex")}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(tmp, flags, 0o600);
  } catch (err) {
    throw new UnsafeFileError(options.what, path, errnoText(err));
  }
  try {
    writeFileSync(fd, text);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, full);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
