// The identity a binding belongs to: the asking process's cgroup, executable and uid. The kernel
// records the executable's inode and device with the socket's owner; when an owner lacks them,
// /proc/PID/exe gives them while the process lives.
import { statSync } from "node:fs";
import { kernelDev } from "../attribution/index.ts";
import type { DnsOwner, NameIdentity } from "./ports.ts";

/** The owner's identity, or null when its executable cannot be known. */
export function identityOf(owner: DnsOwner, procRoot = "/proc"): NameIdentity | null {
  if (owner.exeIno !== undefined && owner.exeDev !== undefined)
    return { cgroupId: owner.cgroupId, exeIno: owner.exeIno, exeDev: owner.exeDev, uid: owner.uid };
  try {
    const st = statSync(`${procRoot}/${owner.pid}/exe`, { bigint: true });
    return {
      cgroupId: owner.cgroupId,
      exeIno: st.ino,
      exeDev: kernelDev(Number(st.dev)),
      uid: owner.uid,
    };
  } catch {
    return null; // exited, or a kernel thread
  }
}
