// Owners of the sockets that were bound before moat's accept hooks were attached
// (docs/socket-hooks.md, "The accept side"). post_bind records the owner of every socket bound
// later; for the earlier ones the kernel has no record, so the daemon lists them once from the
// kernel itself (sock_diag through the addon: each listening TCP and bound UDP socket's inode, uid,
// cookie and cgroup), finds the processes holding each inode in /proc/PID/fd, and writes the owners
// to the kernel by cookie. Nothing is read from another tool's text: a process name is only ever
// a name.
import { readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { native } from "../datapath/addon.ts";
import type { ListedSocket } from "../datapath/native.d.ts";
import { kernelDev } from "../policy/process-universe.ts";
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

const TCP_LISTEN = 10;
const TCP_CLOSE = 7; // an unconnected (bound) udp socket

/** This network namespace's listening TCP and bound UDP sockets, IPv4 and IPv6. */
function boundSockets(): ListedSocket[] {
  const addon = native();
  const out: ListedSocket[] = [];
  for (const family of [4, 6] as const) {
    out.push(...addon.sockList(family, 6, 1 << TCP_LISTEN));
    out.push(...addon.sockList(family, 17, 1 << TCP_CLOSE));
  }
  return out;
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
export function boundSocketOwners(attribution: Attribution, procRoot = "/proc"): SocketOwner[] {
  const sockets = boundSockets();
  const holders = socketHolders(new Set(sockets.map((s) => s.inode)), procRoot);
  const out: SocketOwner[] = [];
  for (const s of sockets) {
    const pid = holders.get(s.inode)?.[0];
    const facts = pid === undefined ? null : attribution.processFacts(pid);
    if (!facts || pid === undefined) continue;
    let exe;
    try {
      exe = statSync(join(procRoot, String(pid), "exe"), { bigint: true });
    } catch {
      continue; // exited meanwhile
    }
    out.push({
      cookie: s.cookie,
      pid,
      uid: s.uid,
      cgroupId: s.cgroupId || (attribution.cgroupIdOf(facts.cgroup) ?? 0n),
      comm: facts.name,
      exeIno: exe.ino,
      exeDev: kernelDev(Number(exe.dev)),
    });
  }
  return out;
}
