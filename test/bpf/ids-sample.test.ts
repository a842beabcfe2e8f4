// Which flows `ids.sample` copies, exactly: the kernel takes 1 in `sample` flows by a hash of
// their addresses and ports that is the same both ways (bpf/include/ids.h, ids_sampled). The
// same hash computed here says which of many flows must be copied and which must not, for
// samples that are powers of two and samples that are not, IPv4 and IPv6, both directions.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";

const SIG = `'alert tcp any any -> any 80 (msg:"admin"; content:"/admin"; sid:1;)'`;
const REQUEST = Buffer.from("GET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
const REPLY = Buffer.from("HTTP/1.1 404 Not Found\r\n\r\n");
const FLOWS = 48;

/** An address as the kernel keeps it: 16 bytes, IPv4 mapped (::ffff:a.b.c.d). */
function addressBytes(ip: string): Buffer {
  const out = Buffer.alloc(16);
  if (ip.includes(".")) {
    out[10] = 0xff;
    out[11] = 0xff;
    ip.split(".").forEach((b, i) => (out[12 + i] = Number(b)));
    return out;
  }
  const [head = "", tail = ""] = ip.split("::");
  const words = (s: string) => (s ? s.split(":").map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  all.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
  return out;
}

const U64 = (1n << 64n) - 1n;

/** ids_sampled: the addresses' 32-bit words (as the little-endian machine reads them) xored
 * pairwise and summed, the ports xored, the protocol, one multiply; 1 in `sample` by its top. */
function sampled(src: string, dst: string, sport: number, dport: number, sample: number): boolean {
  if (sample <= 1) return true;
  const s = addressBytes(src);
  const d = addressBytes(dst);
  let sum = 0;
  for (let i = 0; i < 4; i++)
    sum = (sum + ((s.readUInt32LE(4 * i) ^ d.readUInt32LE(4 * i)) >>> 0)) >>> 0;
  let x = BigInt(sum) << 16n;
  x ^= BigInt((sport ^ dport) >>> 0) | (6n << 48n);
  const h = Number((((x * 0x9e3779b97f4a7c15n) & U64) >> 32n) & 0xffffffffn);
  return h % sample === 0;
}

describe("ids: the flows a sample copies", () => {
  let lab: KernelLab;
  let ring: RingBuffer;
  let copies = 0;
  before(() => {
    lab = new KernelLab();
    ring = lab.dp.subscribeIds(() => copies++);
  });
  after(() => lab.close());

  for (const sample of [2, 4, 8, 5, 6, 12])
    for (const v6 of [false, true])
      test(`sample ${sample}, ${v6 ? "IPv6" : "IPv4"}: exactly the flows the hash picks`, () => {
        lab.policy(`
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
ids:
  rules: [${SIG}]
  sample: ${sample}
`);
        const local = v6 ? "fd00:2::1" : "10.0.0.1";
        const want: boolean[] = [];
        const got: boolean[] = [];
        for (let i = 0; i < FLOWS; i++) {
          const remote = v6 ? `2001:db8::${(i * 37 + sample).toString(16)}` : `198.51.100.${i + 1}`;
          const sport = 40000 + ((i * 7919 + sample * 131) % 20000);
          const inbound = (flags: string, seq: number, payload?: Buffer): PacketSpec => ({
            src: remote,
            dst: local,
            proto: "tcp",
            sport,
            dport: 80,
            flags,
            seq,
            ack: 5001,
            ...(payload ? { payload } : {}),
          });
          const outbound: PacketSpec = {
            src: local,
            dst: remote,
            proto: "tcp",
            sport: 80,
            dport: sport,
            flags: "PA",
            seq: 5001,
            ack: 1001 + REQUEST.length,
            payload: REPLY,
          };
          // the SYN carries data too: a new flow's first packet is copied (or not) by the judge
          assert.equal(lab.run("xdp", inbound("S", 1000, REQUEST)).verdict, "pass");
          lab.run("tc", outbound);
          ring.drain();
          want.push(sampled(remote, local, sport, 80, sample));
          got.push(copies > 0);
          if (copies > 0) assert.equal(copies, 2, "a sampled flow: both directions copied");
          copies = 0;
        }
        assert.deepEqual(got, want);
        assert.ok(want.some((w) => w) && want.some((w) => !w), "both kinds among the flows");
      });
});
