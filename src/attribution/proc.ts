// One process as /proc shows it. Every read may race with the process exiting: any failure that
// means "gone" gives null, never an exception.

import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export interface ProcEntry {
  pid: number;
  /** comm. */
  name: string;
  /** The executable; "" when the kernel will not say (kernel threads, or a permission error). */
  path: string;
  /** The real uid, the one bpf_get_current_uid_gid() reports. */
  uid: number;
  /** The "0::" line of /proc/PID/cgroup: the cgroup v2 path. "/" when the line is missing. */
  cgroup: string;
}

export function readProc(pid: number, procRoot = "/proc"): ProcEntry | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const dir = join(procRoot, String(pid));
  try {
    const status = readFileSync(join(dir, "status"), "utf8");
    const cgroups = readFileSync(join(dir, "cgroup"), "utf8");
    const comm = readFileSync(join(dir, "comm"), "utf8").replace(/\n$/, "");
    const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    // a zombie has exited; only its exit status is left to collect
    if (uid === undefined || /^State:\s+[ZX]/m.test(status)) return null;
    return { pid, name: comm, path: executable(dir), uid: Number(uid), cgroup: cgroupV2(cgroups) };
  } catch {
    return null;
  }
}

function executable(dir: string): string {
  try {
    // a binary replaced or removed since it started still names its old path
    return readlinkSync(join(dir, "exe")).replace(/ \(deleted\)$/, "");
  } catch {
    return "";
  }
}

export function cgroupV2(text: string): string {
  const line = text.split("\n").find((l) => l.startsWith("0::"));
  return line ? line.slice(3) || "/" : "/";
}
