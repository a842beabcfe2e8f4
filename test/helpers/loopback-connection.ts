// A real TCP connection on loopback (a listener that reads and drops what it gets, and a client
// connected to it) and the segments of its tuple either way, for frames through
// BPF_PROG_TEST_RUN that the kernel programs judge with the local sockets in view.
import net from "node:net";
import type { PacketSpec } from "./packets.ts";

const L = "127.0.0.1";

export interface LoopbackConnection {
  /** The listener's port. */
  sport: number;
  /** The client's port. */
  cport: number;
  /** The client's segment to the listener's port (it arrives at the accepted socket). */
  toServer(flags?: string, extra?: Partial<PacketSpec>): PacketSpec;
  /** The listener side's segment to the client (it arrives at the connecting socket). */
  toClient(flags?: string, extra?: Partial<PacketSpec>): PacketSpec;
  close(): void;
}

/** The connection, once the client is connected. */
export async function openLoopbackConnection(): Promise<LoopbackConnection> {
  const server = net.createServer((s) => s.on("data", () => {}).on("error", () => {}));
  await new Promise<void>((r) => server.listen(0, L, r));
  const sport = (server.address() as net.AddressInfo).port;
  const client = net.connect(sport, L);
  await new Promise<void>((r) => client.on("connect", () => r()));
  const cport = client.localPort!;
  const segment = (sport: number, dport: number, flags: string, extra: Partial<PacketSpec>) => ({
    src: L,
    dst: L,
    proto: "tcp" as const,
    sport,
    dport,
    flags,
    ...extra,
  });
  return {
    sport,
    cport,
    toServer: (flags = "A", extra = {}) => segment(cport, sport, flags, extra),
    toClient: (flags = "A", extra = {}) => segment(sport, cport, flags, extra),
    close() {
      client.destroy();
      server.close();
    },
  };
}
