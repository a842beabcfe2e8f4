// The kernel's send buffer of a live subscriber's unix-socket connection, sized to the bytes the
// subscriber may hold unsent. The default (net.core.wmem_default, 212,992 bytes here) is ~4 ms
// of a flood's events as SSE: past it, bytes wait in Node's buffer until the daemon's loop
// polls again, so every stall of the loop counted against the subscriber's budget. With room in
// the kernel the client reads on while the loop is busy. The kernel caps it at
// net.core.wmem_max (doubled); TCP connections are left to the kernel's autotuning.
import type { Duplex } from "node:stream";
import { native } from "../datapath/addon.ts";

/** Asks the kernel to hold about `bytes` unsent on `socket`; returns its SO_SNDBUF (0: not set). */
export function sizeSendBuffer(socket: Duplex | null, bytes: number): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } } | null)?._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return 0;
  try {
    return native().unixSendBuffer(fd, bytes);
  } catch {
    // the connection is already gone, or no addon: the kernel's default stays
    return 0;
  }
}
