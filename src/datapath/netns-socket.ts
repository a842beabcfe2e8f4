// Sockets in another network namespace (a container's), made by the addon on a thread of its
// own that enters the namespace: moat's DNS proxy listens on the container's loopback and asks
// the servers the container reaches from there.
import { statSync } from "node:fs";
import { native } from "./addon.ts";
import type { NetnsSocketSpec } from "./native.d.ts";

export type { NetnsSocketSpec };

export interface NetnsSocket {
  /** Non-blocking; the caller's to wrap (dgram bind({fd}), net listen({fd}), new Socket({fd})). */
  fd: number;
  /** The port it is bound to. */
  port: number;
  /** The namespace's cookie, as bpf_get_netns_cookie gives it to the kernel programs. */
  cookie: bigint;
}

/** A socket made in the network namespace of `nsPath` (/proc/PID/ns/net or an open fd's path). */
export function netnsSocket(nsPath: string, spec: NetnsSocketSpec): NetnsSocket {
  return native().netnsSocket(nsPath, spec);
}

/**
 * Whether moat's own user namespace owns the namespace of `nsPath`: if another does, a user (root
 * there only) sets its addresses and routes. False when either owner cannot be read.
 */
export function ownedByOwnUserNamespace(nsPath: string): boolean {
  try {
    return native().namespaceOwner(nsPath) === statSync("/proc/self/ns/user").ino;
  } catch {
    return false;
  }
}
