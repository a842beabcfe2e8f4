// Owners of the sockets that were bound before moat's accept hooks were attached
// (docs/socket-hooks.md, "The accept side"). post_bind records the owner of every socket bound
// later; for the earlier ones the kernel has no record, so the daemon reads them once from
// sock_diag (`ss -tulnpe`: each listening TCP and bound UDP socket with its cookie, its cgroup and
// the processes holding it) and /proc, and writes them to the kernel by cookie.
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { kernelDev } from "./kernel-dev.ts";
import type { Attribution } from "./attributor.ts";

/** Who owns a socket the kernel knows by cookie: the `moat_owner` record the hooks write. */
export interface SocketOwner {
  cookie: bigint;
  pid: number;
  uid: number;
  cgroupId: bigint;
  comm: string;
  /** The executable's inode and device (the kernel's encoding, MKDEV). */
  exeIno: bigint;
  exeDev: number;
}

/** One socket of `ss -tulnpe`: its cookie, the cgroup it was made in, the pids holding it. */
export interface ListedSocket {
  cookie: bigint;
  cgroup: string | null;
  pids: number[];
}

/** `ss -Htulnpe` output -> the sockets held by some process (others have no owner to record). */
export function parseSocketList(text: string): ListedSocket[] {
  const out: ListedSocket[] = [];
  for (const line of text.split("\n")) {
    const cookie = /\ssk:([0-9a-f]+)/.exec(line)?.[1];
    const users = /users:\(\((.*?)\)\)/.exec(line)?.[1];
    if (!cookie || !users) continue;
    const pids = [...users.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    out.push({
      cookie: BigInt(`0x${cookie}`),
      cgroup: /\scgroup:(\S+)/.exec(line)?.[1] ?? null,
      pids: [...new Set(pids)].sort((a, b) => a - b),
    });
  }
  return out;
}

/**
 * The owners of this network namespace's listening TCP and bound UDP sockets, as post_bind would
 * have recorded them: the lowest pid holding the socket (the one that made it, for a server that
 * forks its workers), its real uid, comm and executable, and the socket's cgroup.
 */
export function boundSocketOwners(attribution: Attribution, procRoot = "/proc"): SocketOwner[] {
  const ss = spawnSync("ss", ["-Htulnpe"], { encoding: "utf8", timeout: 10_000 });
  if (ss.status !== 0) return [];
  const out: SocketOwner[] = [];
  for (const s of parseSocketList(ss.stdout)) {
    const pid = s.pids[0];
    const facts = pid === undefined ? null : attribution.processFacts(pid);
    if (!facts || pid === undefined) continue;
    let exe;
    try {
      exe = statSync(join(procRoot, String(pid), "exe"), { bigint: true });
    } catch {
      continue; // exited meanwhile
    }
    const cgroupId =
      (s.cgroup ? attribution.cgroupIdOf(s.cgroup) : null) ?? attribution.cgroupIdOf(facts.cgroup);
    out.push({
      cookie: s.cookie,
      pid,
      uid: facts.user,
      cgroupId: cgroupId ?? 0n,
      comm: facts.name,
      exeIno: exe.ino,
      exeDev: kernelDev(Number(exe.dev)),
    });
  }
  return out;
}
