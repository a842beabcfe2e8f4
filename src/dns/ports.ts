// What the DNS proxy needs from the rest of moat, as small interfaces: the datapath's name
// bindings (written into the kernel's live slot), the live policy image's name classes, and the
// kernel's record of where a redirected client meant to go. The daemon plugs the real datapath
// in; tests plug in their own.
import type { KernelOwner } from "../attribution/index.ts";
import type { JournaledName, JournalKey, NameBinding, NameIdentity } from "../datapath/index.ts";

// who asked (cgroup, executable, uid; all zero = everyone, /etc/hosts) and one address's binding;
// one name of a binding as the names journal keeps it for the next daemon
export type { JournaledName, JournalKey, NameBinding, NameIdentity };

export interface NameKey {
  identity: NameIdentity;
  ip: string;
}

/** The kernel's bindings map of the live policy slot. Every call is synchronous. */
export interface NameBinder {
  /** Writes the bindings; `full` counts those the full map refused. */
  bindNames(bindings: NameBinding[]): { written: number; full: number };
  unbindNames(keys: NameKey[]): void;
  /** Now, on the clock of `expiresNs`. */
  monotonicNs(): bigint;
  /** Journals names made or refreshed, so a daemon started after this one binds them too. */
  recordNames?(names: JournaledName[]): void;
  /** Removes expired names from the journal. */
  forgetNames?(keys: JournalKey[]): void;
}

/**
 * The name class of a set of names in the live image (0 = matches no hostname pattern): the
 * union of what its names match one by one, so names of the same class (or of class 0) add
 * nothing to a set that has one of them.
 */
export type ClassesOf = (names: readonly string[]) => number;

/** A socket's owner as the kernel recorded it; the executable's inode and device when known. */
export interface DnsOwner extends KernelOwner {
  exeIno?: bigint;
  exeDev?: number;
}

/** Where a redirected DNS client meant to send its query, and who it is. */
export interface OriginalQuery {
  original: { ip: string; port: number };
  owner: DnsOwner | null;
}

/** The kernel's record of a redirected client, by its address as the proxy sees it. */
/** `netns`: the cookie of the namespace the proxy's socket is in, when it is not moat's (0n). */
export type OriginalLookup = (
  peer: { ip: string; port: number },
  protocol: "udp" | "tcp",
  netns: bigint,
) => OriginalQuery | null;

export const ZERO_IDENTITY: NameIdentity = { cgroupId: 0n, exeIno: 0n, exeDev: 0, uid: 0 };

/** A stable text key of an identity. */
export const identityKey = (i: NameIdentity): string =>
  `${i.cgroupId}/${i.exeIno}/${i.exeDev}/${i.uid}`;
