// An inbound TCP connection to port 80 of this host, as frames for BPF_PROG_TEST_RUN: the
// client's segments and the server's, from a random client port (tests in one lab do not share a
// tuple). The client's ISN is 1000 and the server's 5000, as the acks assume by default.
import type { PacketSpec } from "./packets.ts";

export interface InboundTcpFlow {
  /** The server's address (this host's). */
  local: string;
  /** The client's address. */
  remote: string;
  /** The client's port. */
  sport: number;
  /** The client's segment to the server; it acks the server's first byte unless told. */
  client(flags: string, seq: number, payload?: Buffer, ack?: number): PacketSpec;
  /** The server's segment to the client; it acks the client's first byte unless told. */
  server(flags: string, seq: number, ack?: number, payload?: Buffer): PacketSpec;
}

/** A new flow, over IPv6 or IPv4. */
export function inboundTcpFlow(v6 = false): InboundTcpFlow {
  const [local, remote] = v6 ? ["fd00:2::1", "2001:db8::5"] : ["10.0.0.1", "198.51.100.5"];
  const sport = 20000 + Math.floor(Math.random() * 40000);
  const segment = (
    src: string,
    dst: string,
    ports: [number, number],
    flags: string,
    seq: number,
    ack: number,
    payload?: Buffer,
  ): PacketSpec => ({
    src,
    dst,
    proto: "tcp",
    sport: ports[0],
    dport: ports[1],
    flags,
    seq,
    ack,
    ...(payload ? { payload } : {}),
  });
  return {
    local,
    remote,
    sport,
    client: (flags, seq, payload, ack = 5001) =>
      segment(remote, local, [sport, 80], flags, seq, ack, payload),
    server: (flags, seq, ack = 1001, payload) =>
      segment(local, remote, [80, sport], flags, seq, ack, payload),
  };
}
