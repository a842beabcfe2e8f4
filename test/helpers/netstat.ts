// The kernel's TCP counters of a network namespace (/proc/net/netstat's TcpExt lines): what the
// SYN flood tests and bench read to see whether the kernel's own syncookies or queue overflowed.
import { spawnSync } from "node:child_process";

/** TcpExt counters by name (SyncookiesSent, ListenOverflows, ...) in namespace `ns`. */
export function tcpExt(ns: string): Record<string, number> {
  const r = spawnSync("ip", ["netns", "exec", ns, "cat", "/proc/net/netstat"], {
    encoding: "utf8",
  });
  const lines = r.stdout.split("\n").filter((l) => l.startsWith("TcpExt:"));
  const names = (lines[0] ?? "").split(/\s+/).slice(1);
  const values = (lines[1] ?? "").split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
}
