// flood.syn under scrub.mss through BPF_PROG_TEST_RUN: the MSS a cookie carries (the one the
// server's socket for the connection gets) is the largest of the cookie's values (536, 1220,
// 1440, 1460) not above the client's MSS clamped to the family's scrub.mss, at XDP and at TC
// ingress.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";

/** The MSS values a cookie can carry, by the index in its bits 5-6. */
const COOKIE_MSS = [536, 1220, 1440, 1460];

const policy = (scrub: string) => `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] } }
flood:
  syn: { ports: [80], rate: 1/s, burst: 1, hold: 1m, mode: prevent }
${scrub}
`;

/** A SYN's MSS option, then SACK permitted and a window scale (as Linux's, without timestamps). */
const synOptions = (mss: number) =>
  Buffer.from([2, 4, mss >> 8, mss & 0xff, 4, 2, 1, 3, 3, 7, 0, 0]);

const tcpAt = (frame: Buffer) => (frame.readUInt16BE(12) === 0x0800 ? 14 + 20 : 14 + 40);

/** The cookie in a SYN-ACK moat sent: its sequence number. */
const cookieOf = (synAck: Buffer) => synAck.readUInt32BE(tcpAt(synAck) + 4);

/** The MSS the cookie carries for the server's socket. */
const cookieMss = (cookie: number) => COOKIE_MSS[(cookie >>> 5) & 3];

const families = [
  { v: "IPv4", client: "198.51.100.8", server: "10.0.0.1", clamp: 1400 },
  { v: "IPv6", client: "2001:db8::8", server: "fd00:2::1", clamp: 1300 },
];
type Family = (typeof families)[number];

let sport = 46000;
const syn = (f: Family, mss: number): PacketSpec => ({
  src: f.client,
  dst: f.server,
  proto: "tcp",
  sport: sport++,
  dport: 80,
  flags: "S",
  seq: 7000,
  tcpOptions: synOptions(mss),
});

describe("flood.syn cookies under scrub.mss", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
  });
  after(() => lab.close());

  /** The MSS of the cookie moat answers a SYN offering `mss` with, at `hook`; the port is put
   * under attack first (one SYN a second, burst 1). */
  function answeredMss(hook: "xdp" | "tc-ingress", f: Family, mss: number): number | undefined {
    lab.run(hook, syn(f, mss));
    const r = lab.run(hook, syn(f, mss));
    assert.equal(r.verdict, "tx", "answered with a cookie");
    return cookieMss(cookieOf(r.data));
  }

  for (const hook of ["xdp", "tc-ingress"] as const)
    for (const f of families) {
      test(`${hook}, ${f.v}: a client's MSS above the clamp is clamped first (${f.clamp} -> 1220)`, () => {
        lab.policy(policy("scrub: { mss: { ipv4: 1400, ipv6: 1300 } }"));
        assert.equal(answeredMss(hook, f, 1460), 1220);
      });

      test(`${hook}, ${f.v}: a client's MSS under the clamp is kept as before`, () => {
        lab.policy(policy("scrub: { mss: { ipv4: 1400, ipv6: 1300 } }"));
        assert.equal(answeredMss(hook, f, 1000), 536);
      });

      test(`${hook}, ${f.v}: without a clamp the client's MSS is encoded`, () => {
        lab.policy(policy(""));
        assert.equal(answeredMss(hook, f, 1460), 1460);
      });
    }

  /** The MSS option of the SYN-ACK moat sends (the client's side of the connection). */
  const advertisedMss = (synAck: Buffer): number | undefined => {
    const th = tcpAt(synAck);
    const end = th + (synAck[th + 12]! >> 4) * 4;
    for (let o = th + 20; o < end;) {
      const kind = synAck[o]!;
      if (kind === 0) break;
      if (kind === 1) {
        o++;
        continue;
      }
      if (kind === 2) return synAck.readUInt16BE(o + 2);
      o += synAck[o + 1]!;
    }
    return undefined;
  };

  for (const hook of ["xdp", "tc-ingress"] as const)
    for (const f of families)
      test(`${hook}, ${f.v}: the SYN-ACK offers the client no more than the clamp`, () => {
        lab.policy(policy("scrub: { mss: { ipv4: 1400, ipv6: 1300 } }"));
        lab.run(hook, syn(f, 1460));
        const r = lab.run(hook, syn(f, 1460));
        assert.equal(r.verdict, "tx", "answered with a cookie");
        assert.equal(advertisedMss(r.data), f.clamp);
      });

  test("a clamp at a table value is kept: 1440 -> 1440", () => {
    lab.policy(policy("scrub: { mss: 1440 }"));
    assert.equal(answeredMss("xdp", families[0]!, 1460), 1440);
  });
});
