// Event records as the kernel makes them in B6 (abi.ts's struct): blocked IPv4 connections to
// 8080 from 4096 remote addresses spread over the IPv4 space, a new source port each, and the
// decode context the benches read them with.
import { event as eventCodec, EventType, Hook } from "../src/datapath/abi.ts";

/** An IPv4 address as the kernel stores it: IPv4-mapped IPv6. */
const mapped = (n: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(0xffff, 10);
  b.writeUInt32BE(n >>> 0, 12);
  return b;
};

/** `count` encoded event records. */
export const syntheticRecords = (count: number): Buffer[] =>
  Array.from({ length: count }, (_, i) =>
    eventCodec.encode({
      ts_ns: BigInt(1e12 + i * 2000),
      conn_id: BigInt(0x1234_0000 + i),
      local: mapped(0x0a000001),
      remote: mapped(Math.imul(i % 4096, 0x9e3779b1) >>> 0),
      local_port: 8080,
      remote_port: 1024 + (((i / 4096) | 0) % 64000),
      rule: 0xffffffff,
      generation: 1,
      type: EventType.blocked,
      verdict: EventType.blocked,
      hook: Hook.xdpIngress,
      family: 4,
      protocol: 6,
      direction: 0,
      mode: 2,
      reason: 1,
    }),
  );

/** The decode context of the records: no rule, no interface names. */
export const syntheticContext = () => ({
  bootTimeMs: Date.now() - 1e6,
  rule: () => undefined,
  interfaceName: () => null,
});
