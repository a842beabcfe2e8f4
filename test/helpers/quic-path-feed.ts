// The daemon's QUIC path (src/daemon/quic-path.ts) fed by hand: the kernel's copies of a flow's
// first datagram, and the follow-up events the path pushes for them.
import { quicInitial } from "../../src/datapath/abi.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import type { ImageRule } from "../../src/policy/index.ts";
import { startQuicPath } from "../../src/daemon/quic-path.ts";

/** The kernel's record of chromium's (pid 812) datagram `data` to 192.0.2.10:443, generation 7. */
export function quicRecord(cookie: bigint, rule: number, verdict: number, data: Buffer): Buffer {
  const owner = Buffer.alloc(48);
  owner.writeUInt32LE(812, 20); // pid (struct moat_owner)
  owner.write("chromium", 32);
  return quicInitial.encode({
    ts_ns: 1_000_000_000n,
    cookie,
    local: mappedAddress("10.0.0.2"),
    remote: mappedAddress("192.0.2.10"),
    local_port: 51234,
    remote_port: 443,
    rule,
    generation: 7,
    len: data.length,
    family: 4,
    verdict,
    owner,
    data,
  });
}

/** A QUIC path whose generation 7 holds `rules`: what it pushed, and how to hand it a record. */
export function quicPathWith(rules: ImageRule[]): {
  events: MoatEvent[];
  deliver: (r: Buffer) => void;
} {
  const events: MoatEvent[] = [];
  let deliver: (r: Buffer) => void = () => {};
  startQuicPath({
    source: {
      subscribeQuic: (fn) => (deliver = fn),
      contents: { rule: (i, g) => (g === 7 ? (rules[i] ?? null) : null) },
    },
    push: (e) => events.push(e),
    process: (o) => ({ pid: o.pid, name: o.comm, path: "", user: 0, cgroup: "", container: null }),
    bootTimeMs: 0,
  });
  return { events, deliver: (r: Buffer) => deliver(r) };
}
