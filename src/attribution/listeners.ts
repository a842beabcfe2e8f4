// Owners of the sockets that were bound before moat's accept hooks were attached
// (docs/socket-hooks.md, "The accept side"). post_bind records the owner of every socket bound
// later; for the earlier ones the kernel has no record, so the daemon lists them once from the
// kernel itself (sock_diag through the addon, src/datapath/bound-sockets.ts: each listening TCP and bound UDP socket's inode, uid,
// cookie and cgroup), finds the processes holding each inode in /proc/PID/fd, and writes the owners
// to the kernel by cookie. Nothing is read from another tool's text: a process name is only ever
// a name.
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { fileIdentities } from "./file-identity.ts";
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
  /** The inode's generation (absent or 0: not known; file-identity.ts). */
  exeGen?: number;
}

/** A socket as sock_diag lists it (the datapath's boundSockets). */
export interface BoundSocket {
  /** The socket's inode: /proc/PID/fd/N links to socket:[inode]. */
  inode: number;
  uid: number;
  cookie: bigint;
  /** The cgroup v2 id it was made in (0 when the kernel does not say). */
  cgroupId: bigint;
}

/** inode -> the pids holding a descriptor of that socket, lowest first. */
export function socketHolders(inodes: Set<number>, procRoot = "/proc"): Map<number, number[]> {
  const holders = new Map<number, number[]>();
  const pids = readdirSync(procRoot)
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(procRoot, String(pid), "fd"));
    } catch {
      continue; // exited meanwhile
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(procRoot, String(pid), "fd", fd));
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode === undefined || !inodes.has(Number(inode))) continue;
      const list = holders.get(Number(inode)) ?? [];
      if (list.at(-1) !== pid) list.push(pid);
      holders.set(Number(inode), list);
    }
  }
  return holders;
}

/**
 * The owners of this network namespace's listening TCP and bound UDP sockets, as post_bind would
 * have recorded them: the lowest pid holding the socket (the one that made it, for a server that
 * forks its workers), its comm and executable, and the socket's own uid and cgroup (the kernel's,
 * from when it was made).
 */
export function boundSocketOwners(
  attribution: Attribution,
  sockets: readonly BoundSocket[],
  procRoot = "/proc",
): SocketOwner[] {
  const holders = socketHolders(new Set(sockets.map((s) => s.inode)), procRoot);
  const exeOf = (pid: number) => join(procRoot, String(pid), "exe");
  // every holder's executable in one read: the kernel's identity, as the socket hooks record it
  const exes = fileIdentities([...new Set([...holders.values()].map((pids) => exeOf(pids[0]!)))]);
  const out: SocketOwner[] = [];
  for (const s of sockets) {
    const pid = holders.get(s.inode)?.[0];
    const facts = pid === undefined ? null : attribution.processFacts(pid);
    if (!facts || pid === undefined) continue;
    const exe = exes.get(exeOf(pid));
    if (!exe) continue; // exited meanwhile
    out.push({
      cookie: s.cookie,
      pid,
      uid: s.uid,
      cgroupId: s.cgroupId || (attribution.cgroupIdOf(facts.cgroup) ?? 0n),
      comm: facts.name,
      exeIno: exe.ino,
      exeDev: exe.dev,
      exeGen: exe.gen,
    });
  }
  return out;
}
