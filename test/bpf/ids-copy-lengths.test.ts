// The ids copies' bytes through BPF_PROG_TEST_RUN, at every length a record can take: a copy of
// up to 512 bytes is built in a ring record of a fixed size (the header and 64, 128, 256 or 512
// bytes), a longer one is sent at its own length; either way the daemon gets exactly the copy's
// bytes, no more (not the rest of the fixed record, not an earlier longer copy's), in order, both
// ways of a flow, through XDP and TC, IPv4 and IPv6. A full ring loses such copies counted
// exactly.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import { inboundTcpFlow, type InboundTcpFlow } from "../helpers/inbound-tcp-flow.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { decodeIdsCopy, type IdsCopy } from "../../src/datapath/index.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
ids:
  rules: ['alert tcp any any -> any 80 (msg:"admin"; content:"/admin"; sid:1;)']
  bytes: 1024
`;

/** Around each size a record can take: each fixed size, then the copy's own length. */
const LENGTHS = [
  1, 7, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 1024, 64, 1, 128, 512,
];

/** Bytes of `n` that differ by length, family and side: a mix-up shows. */
const bytesOf = (n: number, salt: number): Buffer =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n + salt * 31) & 0xff));

/** A new flow from client port `sport`: each its own, so no flow finds another's copies done. */
function flowFrom(sport: number, v6: boolean): InboundTcpFlow {
  const f = inboundTcpFlow(v6);
  return {
    ...f,
    sport,
    client: (...a) => ({ ...f.client(...a), sport }),
    server: (...a) => ({ ...f.server(...a), dport: sport }),
  };
}

describe("ids: each copy's bytes exactly, at every length", () => {
  let port = 20000;
  let lab: KernelLab;
  let ring: RingBuffer;
  let copies: IdsCopy[] = [];
  const taken = (): IdsCopy[] => {
    ring.drain();
    const out = copies;
    copies = [];
    return out;
  };
  const pass = (hook: HookName, spec: PacketSpec) =>
    assert.equal(lab.run(hook, spec).verdict, "pass");
  before(() => {
    lab = new KernelLab();
    ring = lab.dp.subscribeIds((r) => copies.push(decodeIdsCopy(r)));
    lab.policy(POLICY);
  });
  after(() => lab.close());

  for (const inHook of ["xdp", "tc-ingress"] as const)
    for (const v6 of [false, true])
      test(`${inHook}, ${v6 ? "IPv6" : "IPv4"}: request and reply of each length`, () => {
        const before = lab.counters();
        for (const n of LENGTHS) {
          const f = flowFrom(port++, v6);
          const request = bytesOf(n, v6 ? 1 : 0);
          const reply = bytesOf(n, v6 ? 3 : 2);
          pass(inHook, f.client("S", 1000));
          pass("tc", f.server("SA", 5000));
          pass(inHook, f.client("PA", 1001, request));
          pass("tc", f.server("PA", 5001, 1001 + n, reply));
          const got = taken();
          assert.deepEqual(
            got.map((c) => [c.remote.port, c.toServer, c.offset, c.data.length]),
            [
              [f.sport, true, 0, n],
              [f.sport, false, 0, n],
            ],
            `${n} bytes`,
          );
          assert.ok(got[0]?.data.equals(request), `${n} bytes to the server`);
          assert.ok(got[1]?.data.equals(reply), `${n} bytes to the client`);
          assert.equal(got[0]?.family, v6 ? 6 : 4);
          assert.ok(got[0]?.first && got[1]?.first);
        }
        const moved = KernelLab.delta(before, lab.counters(), ["idsCopied", "idsLost"]);
        assert.deepEqual(moved, { idsCopied: 2 * LENGTHS.length, idsLost: 0 });
      });
});

describe("ids: a full ring of copies built in it", () => {
  test("the copies that do not fit are counted lost, every one that did is read whole", () => {
    const lab = new KernelLab();
    let copies: IdsCopy[] = [];
    const ring = lab.dp.subscribeIds((r) => copies.push(decodeIdsCopy(r)));
    try {
      lab.policy(POLICY);
      for (const n of [40, 100, 300]) {
        const payload = bytesOf(n, 5);
        const flow = (sport: number): PacketSpec => ({
          src: "203.0.113.21",
          dst: "10.0.0.1",
          proto: "udp",
          sport,
          dport: 9000 + n,
          payload,
        });
        const before = lab.counters();
        // 2 MiB of ring: about 10,500 records of 40 bytes (their record: the header and 64),
        // 7,900 of 100 (the header and 128), 3,200 of 300 (the header and 512)
        const FLOWS = 12_000;
        for (let i = 0; i < FLOWS; i++)
          assert.equal(lab.run("xdp", flow(10000 + i)).verdict, "pass");
        const { idsCopied = 0, idsLost = 0 } = KernelLab.delta(before, lab.counters(), [
          "idsCopied",
          "idsLost",
        ]);
        ring.drain();
        const got = copies;
        copies = [];
        assert.ok(idsLost > 0 && idsCopied > 3000, `${n}: ${idsCopied} copied, ${idsLost} lost`);
        assert.equal(idsCopied + idsLost, FLOWS, `${n}: every flow's copy counted once`);
        assert.equal(got.length, idsCopied);
        for (const c of got) assert.ok(c.offset === 0 && c.data.equals(payload));
      }
    } finally {
      lab.close();
    }
  });
});
