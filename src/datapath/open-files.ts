// This process's open files as the kernel identifies executables (bpf/include/exe_file.h): inode,
// device and generation by descriptor, printed by file_ids.bpf.o's iterator, which runs in the
// reading process and prints that process's regular files only. Registered with
// src/attribution/file-identity.ts when this module loads: the daemon's reads of the executables
// process rules name (src/host/process-universe.ts) and of listeners' owners use it. Loaded on
// first use, kept for the process's life.
import { fileURLToPath } from "node:url";
import { readOpenFilesWith, type FileIdentity } from "../attribution/file-identity.ts";
import { native } from "./addon.ts";
import type { BpfLink, BpfObject } from "./native.d.ts";

export const FILE_IDS_OBJECT = fileURLToPath(
  new URL("../../build/bpf/file_ids.bpf.o", import.meta.url),
);

let object: BpfObject | null = null;
let link: BpfLink | null = null;
let failure: Error | null = null;

function iterator(): BpfLink {
  if (link) return link;
  if (failure) throw failure;
  try {
    object = native().BpfObject.open(FILE_IDS_OBJECT);
    object.load();
    link = object.program("file_ids").attachIter();
    return link;
  } catch (err) {
    object?.close();
    object = null;
    failure = err instanceof Error ? err : new Error(String(err));
    throw failure;
  }
}

/** The identities of this process's open regular files among `fds`, by descriptor. */
export function readOpenFiles(fds: readonly number[]): Map<number, FileIdentity> {
  const wanted = new Set(fds);
  const out = new Map<number, FileIdentity>();
  // one line a file: "<fd> <inode> <device> <generation>"
  for (const line of iterator().readIter().split("\n")) {
    const [fd, ino, dev, gen] = line.split(" ");
    if (gen === undefined || !wanted.has(Number(fd))) continue;
    out.set(Number(fd), { ino: BigInt(ino!), dev: Number(dev), gen: Number(gen) });
  }
  return out;
}

readOpenFilesWith(readOpenFiles);
