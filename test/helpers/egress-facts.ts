// What the hooks read of an egress IPv4 packet from 10.0.0.1, for tests that look a connection up
// in a compiled image.
import type { PacketFacts } from "../../src/policy/compile/image.ts";

/** An IPv4 address's four bytes. */
export const v4 = (ip: string): Uint8Array => Uint8Array.from(ip.split(".").map(Number));

/**
 * The connection's packet to ip:port; `clientPort` is its port, or its process's class at the
 * socket hooks.
 */
export function egressFacts(
  c: { ip: string; port: number; protocol: "tcp" | "udp" },
  clientPort: number,
): PacketFacts {
  return {
    direction: "egress",
    family: 4,
    protocol: c.protocol === "tcp" ? 6 : 17,
    remote: v4(c.ip),
    local: v4("10.0.0.1"),
    serverPort: c.port,
    clientPort,
    icmpType: 0,
    icmpCode: 0,
  };
}
