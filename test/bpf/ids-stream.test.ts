// The ids copies of a TCP direction follow the stream its receiver reads (bpf/include/ids.h),
// through BPF_PROG_TEST_RUN: a SYN's payload is never copied and the stream starts at ISN+1 (a
// SYN-ACK that acknowledges more says the SYN's bytes were taken, unread); a segment with URG
// says which byte the receiver may take out of the stream; a segment over bytes already copied
// (a decoy the receiver drops, then the real one) is copied again at its place until the
// receiver acknowledged them, in a budget of its own that a repeat of the copy before it does not
// spend (a retransmission to a lossy receiver), and a segment ahead of the stream is copied at
// its place; what cannot be copied (the budget spent, an urgent pointer on a segment not
// copied) is told with a record that says bytes went by uncopied. A copy's exact repeat is told
// apart from another version by a sum over all its bytes: a version of a long copy that differs
// only past its first 64 bytes, in its last byte or in the last of a whole word is another
// version, copied; an exact repeat is copied once more only.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import { packet, type PacketSpec } from "../helpers/packets.ts";
import { inboundTcpFlow, type InboundTcpFlow } from "../helpers/inbound-tcp-flow.ts";
import { CtFlag, decodeIdsCopy, type IdsCopy } from "../../src/datapath/index.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
ids:
  rules: ['drop tcp any any -> any 80 (msg:"admin"; flow:to_server; content:"/admin"; sid:1;)']
  bytes: 64
`;
/** The same, copying up to 1,024 bytes a direction: room for long versions of one copy. */
const LONG_POLICY = POLICY.replace("bytes: 64", "bytes: 1024");
const REQUEST = Buffer.from("GET /admin HTTP/1.0\r\nHost: a\r\n\r\n");
const DECOY = Buffer.from("GET /xxxxx HTTP/1.0\r\nHost: a\r\n\r\n");

/** A TCP segment whose urgent pointer is `pointer` (the packet builder writes 0). */
function urgent(spec: PacketSpec, pointer: number): Buffer {
  const frame = packet(spec);
  // ethernet 14, ipv4 without options 20: the tcp header's urgent pointer is at its byte 18
  frame.writeUInt16BE(pointer, 14 + 20 + 18);
  return frame;
}

describe("ids: a TCP direction's copies follow what its receiver reads", () => {
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
  /** The copies since the last call: [offset, bytes, urgent, lost] of the client's direction. */
  function taken(): [number, string, number | null, boolean][] {
    ring.drain();
    const out = copies.filter((c) => c.toServer);
    copies = [];
    return out.map((c) => [c.offset, c.data.toString("latin1"), c.urgent, c.lost]);
  }
  /** Whether the connection of port `sport` is past its copies (one flag test a packet). */
  function done(sport: number): boolean {
    for (const e of lab.dp.conntrack())
      if (e.remote.port === sport || e.local.port === sport)
        return (e.flags & CtFlag.idsDone) !== 0;
    throw new Error(`no entry for port ${sport}`);
  }
  function handshake(f: InboundTcpFlow, syn?: Buffer): void {
    run("xdp", f.client("S", 1000, syn, 0));
    run("tc", f.server("SA", 5000, 1001));
    run("xdp", f.client("A", 1001));
  }

  test("a SYN's payload is not copied: the stream starts at ISN+1", () => {
    const f = inboundTcpFlow();
    handshake(f, Buffer.from("JUNKJUNK"));
    run("xdp", f.client("PA", 1001, REQUEST));
    assert.deepEqual(taken(), [[0, REQUEST.toString("latin1"), null, false]]);
  });

  test("a SYN-ACK that acknowledges the SYN's payload (TCP Fast Open) says bytes went by uncopied", () => {
    const f = inboundTcpFlow();
    run("xdp", f.client("S", 1000, Buffer.from("GET /admin"), 0));
    run("tc", f.server("SA", 5000, 1011));
    assert.deepEqual(taken(), [[0, "", null, true]]);
  });

  test("URG: the copy says which byte its receiver takes out of the stream (Linux: the one before the pointer)", () => {
    const f = inboundTcpFlow();
    handshake(f);
    run("xdp", f.client("PA", 1001, Buffer.from("GET /adm")));
    run("xdp", urgent(f.client("PAU", 1009, Buffer.from("X")), 1));
    run("xdp", f.client("PA", 1010, Buffer.from("in HTTP/1.0\r\n\r\n")));
    assert.deepEqual(taken(), [
      [0, "GET /adm", null, false],
      [8, "X", 8, false],
      [9, "in HTTP/1.0\r\n\r\n", null, false],
    ]);
  });

  test("URG on a segment without bytes to copy: its pointer is not read, the direction is told lost", () => {
    const f = inboundTcpFlow();
    handshake(f);
    run("xdp", f.client("PA", 1001, Buffer.from("GET /adm")));
    // a bare ACK whose urgent pointer names the next byte
    run("xdp", urgent(f.client("AU", 1009), 1));
    run("xdp", f.client("PA", 1009, Buffer.from("Xin HTTP/1.0\r\n\r\n")));
    assert.deepEqual(taken(), [
      [0, "GET /adm", null, false],
      [8, "", null, true],
    ]);
  });

  test("a segment over bytes already copied is copied again, at its place, until the receiver acknowledged them", () => {
    const f = inboundTcpFlow();
    handshake(f);
    run("xdp", f.client("PA", 1001, DECOY)); // the receiver drops it (a bad checksum)
    run("xdp", f.client("PA", 1001, REQUEST));
    run("tc", f.server("A", 5001, 1001 + REQUEST.length));
    run("xdp", f.client("PA", 1001, DECOY)); // acknowledged: the receiver drops what comes again
    assert.deepEqual(taken(), [
      [0, DECOY.toString("latin1"), null, false],
      [0, REQUEST.toString("latin1"), null, false],
    ]);
  });

  test("a segment ahead of the stream is copied at its place, the bytes before it too when they come", () => {
    const f = inboundTcpFlow();
    handshake(f);
    run("xdp", f.client("PA", 1008, REQUEST.subarray(7)));
    run("xdp", f.client("PA", 1001, REQUEST.subarray(0, 7)));
    assert.deepEqual(taken(), [
      [7, REQUEST.subarray(7).toString("latin1"), null, false],
      [0, "GET /ad", null, false],
    ]);
  });

  test("a decoy that fills the window, then the flow's first 32 packets: the real segment is still copied", () => {
    const f = inboundTcpFlow();
    handshake(f);
    const fill = Buffer.concat([DECOY, Buffer.alloc(64, "x")]);
    run("xdp", f.client("PA", 1001, fill));
    for (let i = 0; i < 40; i++) run("xdp", f.client("A", 1001 + fill.length));
    run("xdp", f.client("PA", 1001, REQUEST));
    assert.deepEqual(taken(), [
      [0, fill.subarray(0, 64).toString("latin1"), null, false],
      [0, REQUEST.toString("latin1"), null, false],
    ]);
  });

  test("copies of other versions of bytes already copied have a budget of their own: past it, the direction is told lost", () => {
    const f = inboundTcpFlow();
    handshake(f);
    const version = (i: number) => (i % 2 ? "GET /xx" : "GET /ad");
    for (let i = 0; i <= 12; i++) run("xdp", f.client("PA", 1001, Buffer.from(version(i))));
    run("xdp", f.client("PA", 1008, Buffer.from("min HTTP/1.0\r\n\r\n")));
    const got = taken();
    assert.deepEqual(got.slice(-1), [[7, "", null, true]], "told lost once, where its copy stands");
    assert.deepEqual(
      got.slice(0, -1).map((c) => c[1]),
      [0, 1, 2, 3, 4, 5, 6, 7, 8].map(version),
      "the first copy, 8 copies over it, nothing more of it",
    );
  });

  test("a segment repeated exactly while its receiver has not acknowledged it (a lossy receiver) is copied once more, and spends no budget", () => {
    const f = inboundTcpFlow();
    handshake(f);
    const head = Buffer.from("GET /ad");
    run("xdp", f.client("PA", 1001, head));
    for (let i = 0; i < 20; i++) run("xdp", f.client("PA", 1001, head));
    run("xdp", f.client("PA", 1008, Buffer.from("min HTTP/1.0\r\n\r\n")));
    assert.deepEqual(taken(), [
      [0, "GET /ad", null, false],
      [0, "GET /ad", null, false],
      [7, "min HTTP/1.0\r\n\r\n", null, false],
    ]);
  });

  test("a copy repeated past 64 times is no longer free: a sender that holds a hole open (bytes ahead of it are never acknowledged) loses its direction", () => {
    const f = inboundTcpFlow();
    handshake(f);
    const ahead = Buffer.from("ahead of a hole at 1001-1010");
    for (let i = 0; i < 100; i++) run("xdp", f.client("PA", 1011, ahead));
    const got = taken();
    assert.deepEqual(got.at(-1), [10 + ahead.length, "", null, true], "told lost, past its copy");
    assert.ok(got.length < 20, `${got.length} copies sent`);
  });

  test("another version after exact repeats is still copied, either way round", () => {
    const orders: [Buffer, Buffer][] = [
      [DECOY, REQUEST],
      [REQUEST, DECOY],
    ];
    for (const [first, then] of orders) {
      const f = inboundTcpFlow();
      handshake(f);
      for (let i = 0; i < 12; i++) run("xdp", f.client("PA", 1001, first));
      run("xdp", f.client("PA", 1001, then));
      for (let i = 0; i < 12; i++) run("xdp", f.client("PA", 1001, first));
      assert.deepEqual(
        taken().map((c) => c[1]),
        [first, first, then, first].map((b) => b.toString("latin1")),
      );
    }
  });

  test("the same bytes at another place, or with an urgent pointer, are another copy", () => {
    const f = inboundTcpFlow();
    handshake(f);
    run("xdp", f.client("PA", 1001, REQUEST));
    run("xdp", f.client("PA", 1001, REQUEST));
    // the request's bytes 1-7, then the same 7 bytes one place earlier: not the copy before
    run("xdp", f.client("PA", 1002, REQUEST.subarray(1, 8)));
    run("xdp", f.client("PA", 1001, REQUEST.subarray(1, 8)));
    run("xdp", f.client("PA", 1001, REQUEST.subarray(1, 8)));
    run("xdp", urgent(f.client("PAU", 1001, REQUEST.subarray(1, 8)), 1));
    assert.deepEqual(taken(), [
      [0, REQUEST.toString("latin1"), null, false],
      [0, REQUEST.toString("latin1"), null, false],
      [1, "ET /adm", null, false],
      [0, "ET /adm", null, false],
      [0, "ET /adm", 0, false],
    ]);
  });

  test("a flow is past its copies once both directions are full and acknowledged, or past its first packets and acknowledged", () => {
    const f = inboundTcpFlow();
    handshake(f);
    const request = Buffer.concat([REQUEST, Buffer.alloc(64, "r")]);
    const reply = Buffer.alloc(80, "h");
    run("xdp", f.client("PA", 1001, request));
    run("tc", f.server("PA", 5001, 1001 + request.length, reply));
    assert.equal(done(f.sport), false, "the reply is not acknowledged yet");
    run("xdp", f.client("A", 1001 + request.length, undefined, 5001 + reply.length));
    assert.equal(done(f.sport), true);

    const g = inboundTcpFlow();
    handshake(g);
    run("xdp", g.client("PA", 1001, Buffer.from("GET / HTTP/1.0\r\n\r\n")));
    for (let i = 0; i < 40; i++) run("tc", g.server("A", 5001, 1001 + 18));
    assert.equal(done(g.sport), true, "a request shorter than the window, acknowledged");
    taken();
  });

  describe("versions of a long copy", () => {
    before(() => lab.policy(LONG_POLICY));
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
        const version = (s: string) =>
          s === a.toString("latin1") ? "A" : s === b.toString("latin1") ? "B" : `?${s.length}`;
        assert.deepEqual(
          taken().map(([, data]) => version(data)),
          ["A", "A", "B", "A"],
        );
      });
    }
  });
});
