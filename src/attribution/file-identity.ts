// The identity process rules' `path` key gives an executable (bpf/include/exe_file.h): its inode,
// device (the kernel's encoding, MKDEV) and the inode's generation, which tells the file from a
// later one given the same inode number once it is freed (an upgrade by rename frees the old file
// at once, and any user's next file on that filesystem may get its number). It is read as the
// kernel reads it at exec, for files this process opens, by the datapath's reader
// (src/datapath/open-files.ts, a BPF iterator), registered here when the datapath is loaded.
// Without it, stat(): no generation, and on an overlay of several filesystems a layer's device,
// where the kernel records the overlay's.
import { closeSync, constants, fstatSync, openSync, type BigIntStats } from "node:fs";
import { kernelDev } from "./kernel-dev.ts";

export interface FileIdentity {
  /** The device, MKDEV encoded as the kernel's s_dev. */
  dev: number;
  ino: bigint;
  /** The inode's generation (~0 for a generation of 0); 0: not known (stat() has none). */
  gen: number;
}

/** Reads the identities of this process's open files `fds`; throws when it cannot. */
export type OpenFileReader = (fds: readonly number[]) => Map<number, FileIdentity>;

let kernelReader: OpenFileReader | null = null;
let warned = false;

/** The kernel's reader of open files (null: stat() from now on). */
export function readOpenFilesWith(reader: OpenFileReader | null): void {
  kernelReader = reader;
}

/** Files open at once: each batch is one read of the kernel's reader. */
const BATCH = 256;
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * The identities of the regular files at `paths`, by path: each opened (a batch at a time) and
 * closed after. A path that cannot be opened, is not a regular file, or that `accept` refuses
 * (given its open descriptor and stat) is left out.
 */
export function fileIdentities(
  paths: readonly string[],
  accept: (path: string, fd: number, st: BigIntStats) => boolean = () => true,
): Map<string, FileIdentity> {
  const out = new Map<string, FileIdentity>();
  for (let at = 0; at < paths.length; at += BATCH) {
    const open = new Map<number, { path: string; st: BigIntStats }>();
    try {
      for (const path of paths.slice(at, at + BATCH)) {
        const fd = openFile(path);
        const st = fd === null ? null : kept(path, fd, accept);
        if (fd !== null && st) open.set(fd, { path, st });
      }
      const kernel = readKernel([...open.keys()]);
      for (const [fd, { path, st }] of open) {
        const id = kernel ? kernel.get(fd) : statIdentity(st);
        if (id) out.set(path, id);
      }
    } finally {
      for (const fd of open.keys()) closeSync(fd);
    }
  }
  return out;
}

/** `fd`'s stat if it is a regular file `accept` takes; else null, `fd` closed. */
function kept(
  path: string,
  fd: number,
  accept: (path: string, fd: number, st: BigIntStats) => boolean,
): BigIntStats | null {
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.isFile() && accept(path, fd, st)) return st;
  } catch {
    // neither read nor taken
  }
  closeSync(fd);
  return null;
}

function openFile(path: string): number | null {
  try {
    return openSync(path, OPEN_FLAGS);
  } catch {
    return null; // removed meanwhile, or a process that exited
  }
}

/** The kernel's identities of `fds`; null when there is no reader, or it cannot read. */
function readKernel(fds: number[]): Map<number, FileIdentity> | null {
  if (!kernelReader || fds.length === 0) return null;
  try {
    return kernelReader(fds);
  } catch (err) {
    warnOnce(err instanceof Error ? err.message : String(err));
    return null;
  }
}

/**
 * stat()'s identity: generation 0, "not known". The kernel then matches the file by inode and
 * device alone (bpf/include/classify.h exe_class), as it matched every file before generations:
 * a rule without generations keeps working, at the cost the warning names.
 */
function statIdentity(st: BigIntStats): FileIdentity {
  return { dev: kernelDev(Number(st.dev)), ino: st.ino, gen: 0 };
}

function warnOnce(reason: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(
    `executables are identified by stat(), the kernel's reader of open files could not be used (${reason}): ` +
      "process rules' paths may not match files on an overlay of several filesystems, and a file " +
      "given the inode number of a removed executable is taken for it until moat reads the rule's " +
      "directory again",
    { code: "MOAT_EXE_IDENTITY" },
  );
}
