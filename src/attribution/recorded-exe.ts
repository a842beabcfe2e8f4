// Whether a live process still runs the executable the kernel recorded with its socket event.
// /proc/PID/exe is read when the event arrives, after the fact: a process that connected and then
// exec'd another program, or repointed /proc/self/exe (prctl(PR_SET_MM_MAP), which an
// unprivileged process may call in a user namespace of its own), would otherwise be reported as
// that other file.
import { statSync } from "node:fs";
import { join } from "node:path";
import { fileIdentities } from "./file-identity.ts";
import { kernelDev } from "./kernel-dev.ts";

/** The part of a kernel owner (attributor.ts KernelOwner) this check reads. */
interface RecordedOwner {
  pid: number;
  exeIno?: bigint;
  exeDev?: number;
}

/**
 * false when the process at `procRoot`/PID runs another file than `owner`'s recorded
 * executable; true when it runs that file, or when either side is not known (no record in the
 * event, or /proc/PID/exe cannot be read).
 */
export function runsRecordedExe(owner: RecordedOwner, procRoot: string): boolean {
  if (owner.exeIno === undefined) return true;
  const exe = join(procRoot, String(owner.pid), "exe");
  let st;
  try {
    st = statSync(exe, { bigint: true });
  } catch {
    return true;
  }
  if (st.ino !== owner.exeIno) return false;
  if (owner.exeDev === undefined || kernelDev(Number(st.dev)) === owner.exeDev) return true;
  // stat() shows a file on an overlay of several filesystems with a layer's device, where the
  // kernel records the overlay's: the file is identified as the kernel identifies it at exec
  const id = fileIdentities([exe]).get(exe);
  return !id || id.gen === 0 || id.dev === owner.exeDev;
}
