// ids: a copy's exact repeat is told apart from another version by a sum over all its bytes. A
// version of a long copy that differs only past its first 64 bytes, in its last byte or in the
// last of a whole word is another version, copied; an exact repeat is copied once more only.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { inboundTcpFlow, type InboundTcpFlow } from "../helpers/inbound-tcp-flow.ts";
import { decodeIdsCopy, type IdsCopy } from "../../src/datapath/index.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
ids:
  rules: ['drop tcp any any -> any 80 (msg:"admin"; flow:to_server; content:"/admin"; sid:1;)']
  bytes: 1024
`;

describe("ids: versions of a long copy", () => {
  let lab: KernelLab;
  let ring: RingBuffer;
  let copies: IdsCopy[] = [];
  before(() => {
    lab = new KernelLab();
    ring = lab.dp.subscribeIds((r) => copies.push(decodeIdsCopy(r)));
    lab.policy(POLICY);
  });
  after(() => lab.close());
  const run = (hook: HookName, frame: Buffer | PacketSpec) =>
    assert.equal(lab.run(hook, frame).verdict, "pass");
  function taken(): string[] {
    ring.drain();
    const out = copies.filter((c) => c.toServer);
    copies = [];
    return out.map((c) => c.data.toString("latin1"));
  }
  function handshake(f: InboundTcpFlow): void {
    run("xdp", f.client("S", 1000, undefined, 0));
    run("tc", f.server("SA", 5000, 1001));
    run("xdp", f.client("A", 1001));
  }
  const cases: [len: number, at: number][] = [
    [300, 200],
    [300, 299],
    [1000, 900],
    [1000, 64],
    [130, 70],
    [64, 63],
  ];
  for (const [len, at] of cases) {
    test(`${len} bytes, a version differing at ${at}`, () => {
      const f = inboundTcpFlow();
      handshake(f);
      const a = Buffer.alloc(len, "a");
      const b = Buffer.from(a);
      b[at] = 0x62;
      run("xdp", f.client("PA", 1001, a));
      for (let i = 0; i < 5; i++) run("xdp", f.client("PA", 1001, a));
      run("xdp", f.client("PA", 1001, b));
      run("xdp", f.client("PA", 1001, b));
      run("xdp", f.client("PA", 1001, a));
      const got = taken();
      assert.deepEqual(
        got.map((s) =>
          s === a.toString("latin1") ? "A" : s === b.toString("latin1") ? "B" : `?${s.length}`,
        ),
        ["A", "A", "B", "A"],
      );
    });
  }
});
