// The identity a binding belongs to: the asking process's cgroup, executable and uid. The kernel
// records the executable's inode and device with the socket's owner; when an owner lacks them,
// /proc/PID/exe gives them while the process lives.
import { statSync } from "node:fs";
import { kernelDev } from "../attribution/index.ts";
import { ownerCache } from "./owner-cache.ts";
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

/**
 * identityOf per query, the same identity object for a second for an owner whose executable the
 * kernel recorded (the identity is then the owner's own fields: the binding store keys that object
 * once); an owner without is looked up in /proc each time, as identityOf does.
 */
export function identityCache(
  procRoot = "/proc",
  now?: () => number,
): (owner: DnsOwner) => NameIdentity | null {
  const known = ownerCache((owner) => identityOf(owner, procRoot), {
    maxAgeMs: 1000,
    ...(now ? { now } : {}),
  });
  return (owner) =>
    owner.exeIno !== undefined && owner.exeDev !== undefined
      ? known(owner)
      : identityOf(owner, procRoot);
}
