// The ids signatures' kernel part through BPF_PROG_TEST_RUN: the first bytes of each direction of
// a flow are copied to the ids ring buffer with their flow and place in the stream (XDP, TC
// ingress and TC egress, IPv4 and IPv6, TCP and UDP), up to ids.bytes (a retransmission its
// receiver acknowledged is not copied twice), never from flows the sample leaves out, and nothing
// at all without signatures; every packet passes as it came.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import { limitClock } from "../helpers/limit-state.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { inboundTcpFlow } from "../helpers/inbound-tcp-flow.ts";
import { decodeIdsCopy, type IdsCopy } from "../../src/datapath/index.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";

const SIG = `'alert tcp any any -> any 80 (msg:"admin"; content:"/admin"; sid:1;)'`;
const POLICY = (ids: string) => `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
${ids}
`;

const REQUEST = Buffer.from("GET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
const REPLY = Buffer.from("HTTP/1.1 404 Not Found\r\n\r\n");
/** ids.bytes in the first fixtures: less than the request and the reply */
const BYTES = 24;

class IdsLab {
  readonly lab: KernelLab;
  private readonly ring: RingBuffer;
  private copies: IdsCopy[] = [];
  constructor(ids: string, lab = new KernelLab()) {
    this.lab = lab;
    this.ring = this.lab.dp.subscribeIds((r) => this.copies.push(decodeIdsCopy(r)));
    this.lab.policy(POLICY(ids));
  }
  run(hook: HookName, spec: PacketSpec): void {
    assert.equal(this.lab.run(hook, spec).verdict, "pass");
  }
  taken(): IdsCopy[] {
    this.ring.drain();
    const out = this.copies;
    this.copies = [];
    return out;
  }
  close(): void {
    this.lab.close();
  }
}

describe("ids: the first bytes of each flow direction, copied", () => {
  let ids: IdsLab;
  before(() => {
    ids = new IdsLab(`ids:\n  rules: [${SIG}]\n  bytes: ${BYTES}`);
  });
  after(() => ids.close());

  for (const inHook of ["xdp", "tc-ingress"] as const)
    for (const v6 of [false, true])
      test(`${inHook}, ${v6 ? "IPv6" : "IPv4"}: request and reply, in order, up to bytes`, () => {
        const f = inboundTcpFlow(v6);
        const before = ids.lab.counters();
        ids.run(inHook, f.client("S", 1000));
        ids.run("tc", f.server("SA", 5000));
        ids.run(inHook, f.client("A", 1001));
        assert.deepEqual(ids.taken(), [], "no payload, no copy");
        ids.run(inHook, f.client("PA", 1001, REQUEST.subarray(0, 10)));
        ids.run("tc", f.server("A", 5001, 1011)); // the server has them
        ids.run(inHook, f.client("PA", 1001, REQUEST.subarray(0, 10))); // retransmitted
        ids.run(inHook, f.client("PA", 1011, REQUEST.subarray(10)));
        ids.run("tc", f.server("PA", 5001, 1001, REPLY));
        const got = ids.taken();
        assert.deepEqual(
          got.map((c) => [c.toServer, c.offset, c.data.toString("latin1")]),
          [
            [true, 0, "GET /admin"],
            [true, 10, REQUEST.subarray(10, BYTES).toString("latin1")],
            [false, 0, REPLY.subarray(0, BYTES).toString("latin1")],
          ],
        );
        for (const c of got) {
          assert.equal(c.direction, "ingress");
          assert.equal(c.protocol, "tcp");
          assert.equal(c.family, v6 ? 6 : 4);
          assert.deepEqual(c.local, { ip: f.local, port: 80 });
          assert.deepEqual(c.remote, { ip: f.remote, port: f.sport });
          assert.equal(c.verdict, "allowed");
        }
        assert.equal(new Set(got.map((c) => c.connId)).size, 1, "one flow");
        const moved = KernelLab.delta(before, ids.lab.counters(), ["idsCopied", "idsLost"]);
        assert.deepEqual(moved, { idsCopied: 3, idsLost: 0 });
        // past its first bytes both ways: nothing more
        ids.run(inHook, f.client("PA", 1000 + REQUEST.length + 1, REQUEST));
        ids.run("tc", f.server("PA", 5001 + REPLY.length, 1001, REPLY));
        assert.deepEqual(ids.taken(), []);
      });

  for (const v6 of [false, true])
    test(`udp ${v6 ? "IPv6" : "IPv4"}: the datagram that opens the flow is copied, egress too`, () => {
      const [local, remote] = v6 ? ["fd00:2::1", "2001:db8::7"] : ["10.0.0.1", "203.0.113.7"];
      ids.run("tc", {
        src: local,
        dst: remote,
        proto: "udp",
        sport: 5353,
        dport: 9999,
        payload: Buffer.from("hello"),
      });
      const [c, ...rest] = ids.taken();
      assert.equal(rest.length, 0);
      assert.ok(c);
      assert.equal(c.direction, "egress");
      assert.equal(c.protocol, "udp");
      assert.equal(c.toServer, true);
      assert.deepEqual(c.remote, { ip: remote, port: 9999 });
      assert.equal(c.data.toString(), "hello");
    });
});

describe("ids: a flow's first packet dropped over its rate limit", () => {
  const LIMITED = `
rules:
  - name: limited
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5001] }
    rate_limit: { rate: 1/s, algorithm: fixed_window }
ids:
  rules: ['alert udp any any -> any 5001 (msg:"hello"; content:"hello"; sid:2;)']
  bytes: 1024`;
  let ids: IdsLab;
  let at: (ms: number) => void;
  before(() => {
    ids = new IdsLab(LIMITED, new KernelLab({ globals: { limit_test_clock: 1 } }));
    at = limitClock(ids.lab.dp.object).at;
  });
  after(() => ids.close());
  const from = (sport: number, text: string | Buffer, dport = 5001): PacketSpec => ({
    src: "198.51.100.9",
    dst: "10.0.0.1",
    proto: "udp",
    sport,
    dport,
    payload: Buffer.from(text),
  });
  /** ms: each case in a window of its own, well past boot */
  let second = 1_000_000_000;

  test("the flow is copied from its start when a later packet passes", () => {
    second += 10_000;
    at(second);
    ids.run("xdp", from(30001, "first"));
    assert.equal(ids.lab.run("xdp", from(30002, "hello")).verdict, "drop", "over the limit");
    at(second + 1000);
    ids.run("xdp", from(30002, "hello again"));
    assert.deepEqual(
      ids.taken().map((c) => [c.remote.port, c.offset, c.data.toString()]),
      [
        [30001, 0, "first"],
        [30002, 0, "hello again"],
      ],
      "the dropped datagram was not copied, and the next one starts the copy",
    );
  });

  test("the same when the ring was full as the first packet came", () => {
    second += 10_000;
    at(second);
    // 2 MiB of ring filled by other flows' copies, not read
    const big = Buffer.alloc(1000, "x");
    for (let i = 0; i < 2200; i++) ids.run("xdp", from(40000 + i, big, 9000));
    const before = ids.lab.counters();
    ids.run("xdp", from(30011, "first"));
    assert.equal(ids.lab.run("xdp", from(30012, "hello")).verdict, "drop", "over the limit");
    assert.ok(KernelLab.delta(before, ids.lab.counters(), ["idsLost"]).idsLost === 2, "lost");
    ids.taken();
    at(second + 1000);
    ids.run("xdp", from(30012, "hello again"));
    assert.deepEqual(
      ids.taken().map((c) => [c.remote.port, c.offset, c.data.toString()]),
      [[30012, 0, "hello again"]],
      "the copy starts with the packet that passed",
    );
  });
});

describe("ids: what is not copied", () => {
  test("a policy without signatures (or whose every signature was refused) copies nothing", () => {
    const ids = new IdsLab(
      `ids:\n  rules: ['alert tcp any any -> any 80 (content:"a"; pcre:"/a/"; sid:1;)']`,
    );
    try {
      const f = inboundTcpFlow(false);
      ids.run("xdp", f.client("S", 1000));
      ids.run("xdp", f.client("PA", 1001, REQUEST));
      assert.deepEqual(ids.taken(), []);
    } finally {
      ids.close();
    }
  });

  test("a full ring: the copies that do not fit are counted lost, the packets pass, copying resumes once read", () => {
    const ids = new IdsLab(`ids:\n  rules: [${SIG}]\n  bytes: 1024`);
    try {
      const payload = Buffer.alloc(1000, "x");
      const flow = (sport: number): PacketSpec => ({
        src: "203.0.113.20",
        dst: "10.0.0.1",
        proto: "udp",
        sport,
        dport: 9000,
        payload,
      });
      const before = ids.lab.counters();
      // 2 MiB of ring: about 1,850 records of 1,000 bytes
      const FLOWS = 2500;
      for (let i = 0; i < FLOWS; i++) ids.run("xdp", flow(10000 + i));
      const { idsCopied = 0, idsLost = 0 } = KernelLab.delta(before, ids.lab.counters(), [
        "idsCopied",
        "idsLost",
      ]);
      const got = ids.taken();
      assert.ok(idsLost > 0 && idsCopied > 1000, `${idsCopied} copied, ${idsLost} lost`);
      assert.equal(idsCopied + idsLost, FLOWS, "every flow's copy counted once");
      assert.equal(got.length, idsCopied);
      for (const c of got) assert.ok(c.offset === 0 && c.data.equals(payload));
      ids.run("xdp", flow(9999));
      assert.equal(ids.taken().length, 1, "the ring read, a new flow is copied");
    } finally {
      ids.close();
    }
  });

  test("sample: 1 in 4 flows is copied, by its addresses and ports", () => {
    const ids = new IdsLab(`ids:\n  rules: [${SIG}]\n  sample: 4`);
    try {
      let copied = 0;
      for (let i = 0; i < 64; i++) {
        const f = inboundTcpFlow(false);
        ids.run("xdp", f.client("S", 1000));
        ids.run("xdp", f.client("PA", 1001, REQUEST));
        copied += ids.taken().length;
      }
      assert.ok(copied >= 4 && copied <= 36, `${copied} of 64 flows copied at 1 in 4`);
    } finally {
      ids.close();
    }
  });

  test("sample: flows the sample leaves out are not copied", () => {
    const ids = new IdsLab(`ids:\n  rules: [${SIG}]\n  sample: 1000000`);
    try {
      let copied = 0;
      for (let i = 0; i < 8; i++) {
        const f = inboundTcpFlow(i % 2 === 1);
        ids.run("xdp", f.client("S", 1000));
        ids.run("xdp", f.client("PA", 1001, REQUEST));
        copied += ids.taken().length;
      }
      assert.ok(copied <= 1, `${copied} of 8 flows copied at 1 in a million`);
    } finally {
      ids.close();
    }
  });
});

describe("ids: a reload that changes what is read", () => {
  const ON = `ids:\n  rules: [${SIG}]\n  bytes: 64`;
  /** the connection table as it was: the flows in progress carry on */
  const KEEP = { keepConntrack: true };
  const copies = (ids: IdsLab) =>
    ids.taken().map((c) => [c.toServer, c.offset, c.data.toString("latin1")]);

  test("a flow open before ids was turned on is not read from its middle", () => {
    const ids = new IdsLab("");
    try {
      const f = inboundTcpFlow(false);
      ids.run("xdp", f.client("S", 1000));
      ids.run("tc", f.server("SA", 5000));
      ids.run("xdp", f.client("PA", 1001, REQUEST.subarray(0, 10)));
      ids.lab.policy(POLICY(ON), KEEP);
      ids.run("xdp", f.client("PA", 1011, REQUEST.subarray(10)));
      ids.run("tc", f.server("PA", 5001, 1001, REPLY));
      assert.deepEqual(copies(ids), [], "its first bytes went by unread: nothing of it is read");
      const g = inboundTcpFlow(false);
      ids.run("xdp", g.client("S", 1000));
      ids.run("xdp", g.client("PA", 1001, REQUEST));
      assert.deepEqual(copies(ids), [[true, 0, REQUEST.toString("latin1")]], "a new flow is");
    } finally {
      ids.close();
    }
  });

  test("a flow the old sample left out is not read from its middle under a new sample", () => {
    const ids = new IdsLab(`${ON}\n  sample: 1000000`);
    try {
      // flows the old sample left out (the first bytes of each were not copied)
      const flows = Array.from({ length: 8 }, () => inboundTcpFlow(false));
      const left = flows.filter((f) => {
        ids.run("xdp", f.client("S", 1000));
        ids.run("xdp", f.client("PA", 1001, REQUEST.subarray(0, 10)));
        return ids.taken().length === 0;
      });
      assert.ok(left.length >= 7);
      ids.lab.policy(POLICY(ON), KEEP);
      for (const f of left) ids.run("xdp", f.client("PA", 1011, REQUEST.subarray(10)));
      assert.deepEqual(copies(ids), []);
    } finally {
      ids.close();
    }
  });

  test("a reload that keeps the ids settings keeps reading the flows in progress", () => {
    const ids = new IdsLab(ON);
    try {
      const f = inboundTcpFlow(true);
      ids.run("xdp", f.client("S", 1000));
      ids.run("tc", f.server("SA", 5000));
      ids.run("xdp", f.client("PA", 1001, REQUEST.subarray(0, 10)));
      ids.lab.policy(
        POLICY(
          `${ON}\nrules:\n  - { name: other, direction: ingress, action: allow, layer4: { protocol: udp, port: [9] } }`,
        ),
        KEEP,
      );
      ids.run("xdp", f.client("PA", 1011, REQUEST.subarray(10)));
      ids.run("tc", f.server("PA", 5001, 1001, REPLY));
      assert.deepEqual(copies(ids), [
        [true, 0, "GET /admin"],
        [true, 10, REQUEST.subarray(10).toString("latin1")],
        [false, 0, REPLY.toString("latin1")],
      ]);
    } finally {
      ids.close();
    }
  });
});
