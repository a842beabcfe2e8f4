// Flow records from the kernel through BPF_PROG_TEST_RUN: every tracked connection counts its
// packets and bytes each way on the conntrack lookup it already does, and every close (fin both
// ways, reset) sends its totals: a "closed" event when the opening was reported, else a "flow"
// record for the flow records only. Blocked and detected connections count too.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { packet, type PacketSpec } from "../helpers/packets.ts";
import type { ConntrackEntry } from "../../src/datapath/conntrack.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [443] }
  - name: logged
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [8443] }
  - name: watch
    direction: egress
    action: block
    mode: detect
    layer4: { protocol: tcp, port: [9000] }
`;

const H = "10.0.0.1";
const P = "198.51.100.1";
const tcp = (src: string, dst: string, sport: number, dport: number, flags: string, payload = 0) =>
  ({ src, dst, proto: "tcp", sport, dport, flags, payload }) as PacketSpec;

describe("flow counters", () => {
  let lab: KernelLab;
  before(() => (lab = KernelLab.withPolicy(POLICY)));
  beforeEach(() => lab.forget());
  after(() => lab.close());

  /** Runs the frames, each through its hook; returns the bytes each side sent (frame lengths). */
  function exchange(frames: ["tc" | "xdp", PacketSpec][]): { tc: number[]; xdp: number[] } {
    const sent = { tc: [] as number[], xdp: [] as number[] };
    for (const [hook, spec] of frames) {
      assert.equal(lab.run(hook, spec).verdict, "pass");
      sent[hook].push(packet(spec).length);
    }
    return sent;
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const entryOf = (port: number): ConntrackEntry | undefined =>
    [...lab.dp.conntrack()].find((e) => e.local.port === port || e.remote.port === port);

  test("an unlogged allowed connection counts both ways and sends a flow record at its close", () => {
    // ingress to :443: the remote initiates (xdp), this host answers (tc)
    const i = (flags: string, payload = 0) => tcp(P, H, 41000, 443, flags, payload);
    const o = (flags: string, payload = 0) => tcp(H, P, 443, 41000, flags, payload);
    const sent = exchange([
      ["xdp", i("S")],
      ["tc", o("SA")],
      ["xdp", i("A")],
      ["xdp", i("PA", 300)],
      ["tc", o("PA", 1400)],
      ["tc", o("PA", 1400)],
      ["xdp", i("A")],
    ]);
    const live = entryOf(443);
    assert.ok(live, "tracked");
    assert.deepEqual(
      [live.packets.initiator, live.packets.responder],
      [BigInt(sent.xdp.length), BigInt(sent.tc.length)],
    );
    assert.deepEqual(
      [live.bytes.initiator, live.bytes.responder],
      [BigInt(sum(sent.xdp)), BigInt(sum(sent.tc))],
    );
    assert.deepEqual(lab.events(), [], "the opening of an unlogged connection is not reported");

    const close = exchange([
      ["tc", o("FA")],
      ["xdp", i("FA")],
    ]);
    const events = lab.events();
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.reason} ${e.verdict} ${e.rule} ${e.direction}`),
      ["flow fin allowed web ingress"],
    );
    const stats = events[0]?.stats;
    assert.equal(stats?.packets, sent.xdp.length + sent.tc.length + 2);
    assert.equal(stats?.bytes, sum(sent.xdp) + sum(sent.tc) + sum(close.tc) + sum(close.xdp));
    assert.equal(events[0]?.connection, live.id.toString(16));
    assert.equal(events[0]?.remote.port, 41000);
    assert.equal(events[0]?.local.port, 443);
  });

  test("a reset sends the flow record once; a logged connection's close stays a closed event", () => {
    exchange([
      ["xdp", tcp(P, H, 41001, 443, "S")],
      // refused: the reset acks the syn (its sequence number, 1000, + 1)
      ["tc", { ...tcp(H, P, 443, 41001, "RA"), ack: 1001 }],
      ["xdp", tcp(P, H, 41001, 443, "R")],
    ]);
    assert.deepEqual(
      lab.events().map((e) => `${e.type} ${e.reason} ${e.stats?.packets}`),
      ["flow rst 2"],
    );
    exchange([
      ["tc", tcp(H, P, 41002, 8443, "S")],
      ["xdp", tcp(P, H, 8443, 41002, "SA")],
      ["tc", tcp(H, P, 41002, 8443, "R")],
    ]);
    assert.deepEqual(
      lab.events().map((e) => `${e.type} ${e.reason} ${e.verdict}`),
      ["allowed new allowed", "closed rst allowed"],
    );
  });

  test("a detected connection is counted like an allowed one and its close is reported", () => {
    exchange([
      ["tc", tcp(H, P, 41003, 9000, "S")],
      ["xdp", tcp(P, H, 9000, 41003, "SA")],
      ["tc", tcp(H, P, 41003, 9000, "PA", 500)],
      ["tc", tcp(H, P, 41003, 9000, "RA")],
    ]);
    const events = lab.events();
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.reason} ${e.verdict}`),
      ["detected new detected", "closed rst detected"],
    );
    assert.equal(events[1]?.stats?.packets, 4);
  });
});
