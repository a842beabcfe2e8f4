// A connection max_duration cut (prevent), through BPF_PROG_TEST_RUN: it stays cut, and it is
// never reported as detected past max_duration afterwards, whatever mode a reload gives its rule
// or a taken-over entry was cut under.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { packet, tcpEnds, type PacketSpec } from "../helpers/packets.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";
import { CtFlag, TcpState } from "../../src/datapath/abi.ts";

const H = "10.0.0.1";
const P = "198.51.100.1";

const policy = (mode: "detect" | "prevent") => `
version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh-1s
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22], max_duration: 1s }
`;

function entry(lab: KernelLab): ConntrackEntry {
  const found = [...lab.dp.conntrack()].find((e) => e.local.port === 22);
  assert.ok(found, "conntrack entry");
  return found;
}

/** Opens the connection long ago (by its entry): any deadline its rule gives it is past. */
function openLongAgo(lab: KernelLab, sport: number): void {
  assert.equal(lab.run("xdp", peer(sport, "S", { seq: 1000 })).verdict, "pass");
  assert.equal(lab.run("tc", host(sport, "SA", { seq: 5000, ack: 1001 })).verdict, "pass");
  assert.equal(lab.run("xdp", peer(sport, "A", { seq: 1001, ack: 5001 })).verdict, "pass");
  const e = entry(lab);
  assert.ok(e.deadlineNs > 0n, "a deadline was set");
  e.value.created_ns = 1n;
  e.value.deadline_ns = 1n;
  writeConntrack(lab.dp.conntrackMap, e);
  lab.events();
}

/** An inbound connection from P:sport to H:22: the peer's segments (xdp), the host's (tc). */
const { peer, host } = tcpEnds(P, H, 22);

/** The peer's data segment is cut: it passes rewritten to a payload-less probe. */
function isCut(lab: KernelLab, spec: PacketSpec): boolean {
  const r = lab.run("xdp", spec);
  assert.equal(r.verdict, "pass");
  return r.data.length !== packet(spec).length;
}

const reported = (lab: KernelLab) => lab.events().map((e) => `${e.type} ${e.reason} ${e.rule}`);

describe("a connection max_duration cut, then a reload", () => {
  let lab: KernelLab;
  before(() => (lab = KernelLab.withPolicy(policy("prevent"))));
  after(() => lab.close());

  test("to detect: it is not reported again as detected past max_duration", () => {
    lab.forget();
    const sport = 41600;
    openLongAgo(lab, sport);
    assert.ok(isCut(lab, peer(sport, "PA", { seq: 1001, ack: 5001, payload: 100 })), "cut");
    assert.deepEqual(reported(lab), ["closed max_duration ssh-1s"]);
    lab.policy(policy("detect"), { keepConntrack: true });
    // a segment of the cut connection still on its way from the peer
    lab.run("xdp", peer(sport, "PA", { seq: 1101, ack: 5001, payload: 100 }));
    assert.deepEqual(reported(lab), [], "its close was reported: nothing more");
  });

  test("to prevent again: it stays cut, reported once", () => {
    lab.policy(policy("prevent"), { keepConntrack: false });
    const sport = 41650;
    openLongAgo(lab, sport);
    assert.ok(isCut(lab, peer(sport, "PA", { seq: 1001, ack: 5001, payload: 100 })), "cut");
    assert.deepEqual(reported(lab), ["closed max_duration ssh-1s"]);
    lab.policy(policy("prevent"), { keepConntrack: true });
    assert.ok(isCut(lab, peer(sport, "PA", { seq: 1101, ack: 5001, payload: 100 })), "still cut");
    assert.deepEqual(reported(lab), [], "reported once");
  });
});

describe("an entry a previous build cut, taken over", () => {
  let lab: KernelLab;
  before(() => (lab = KernelLab.withPolicy(policy("detect"))));
  after(() => lab.close());

  test("is not reported as detected past max_duration", () => {
    const sport = 41700;
    openLongAgo(lab, sport);
    // what a build that cut under a detect rule too left: closed, cut, its close reported, its
    // deadline kept
    const e = entry(lab);
    e.value.flags = e.value.flags | CtFlag.cut | CtFlag.closeSent | CtFlag.reported;
    e.value.tcp_state = TcpState.closed;
    writeConntrack(lab.dp.conntrackMap, e);
    lab.run("xdp", peer(sport, "PA", { seq: 1101, ack: 5001, payload: 100 }));
    assert.deepEqual(reported(lab), [], "its close was reported by the build that cut it");
  });
});
