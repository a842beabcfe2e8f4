// A daemon that adopts a pinned connection table marks the entries an ids cut blocked
// (MOAT_CT_IDS_CUT) before its first policy goes live: a build that did not set the flag left
// them blocked under an allow rule, which no re-judging ever gives, and the next reload would let
// them through again. An entry its own rule blocked, or one let through, is left as it is.
// Real sockets on loopback (a server on one port, its peer on another), frames through
// BPF_PROG_TEST_RUN; a restart that adopts the pins of a previous start (a test cgroup).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { rmSync } from "node:fs";
import { KernelLab, TC_ACT_SHOT, XDP_DROP, XDP_PASS } from "../helpers/kernel-lab.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";
import { packet } from "../helpers/packets.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { CtFlag, EventType, Mode } from "../../src/datapath/abi.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";
import { markIdsCuts } from "../../src/datapath/ids-cut-adoption.ts";

const L = "127.0.0.1";

let lab: KernelLab;
let cg: TestCgroup;
let server: dgram.Socket;
let peer: dgram.Socket;
/** the peer's datagram to the server (arrives), the server's to the peer (leaves) */
let fromPeer: PacketSpec;
let fromServer: PacketSpec;

before(async () => {
  lab = new KernelLab();
  cg = testCgroup("idscut");
  server = dgram.createSocket("udp4");
  peer = dgram.createSocket("udp4");
  await new Promise<void>((r) => server.bind(0, L, r));
  await new Promise<void>((r) => peer.bind(0, L, r));
  const [sp, pp] = [server.address().port, peer.address().port];
  fromPeer = { src: L, dst: L, proto: "udp", sport: pp, dport: sp, payload: 16 };
  fromServer = { src: L, dst: L, proto: "udp", sport: sp, dport: pp, payload: 16 };
});
after(() => {
  cg.remove();
  server.close();
  peer.close();
  lab.close();
});

/** Both defaults block; `served` lets the peer's datagrams to the server in, `outbound` the
 * server's to the peer out. */
function policyText(rules: { served?: boolean; outbound?: boolean }): string {
  const served = `  - { name: served, direction: ingress, action: allow, layer4: { protocol: udp, port: [${server.address().port}] } }\n`;
  const outbound = `  - { name: outbound, direction: egress, action: allow, layer4: { protocol: udp, port: [${peer.address().port}] } }\n`;
  return `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
${rules.served ? served : ""}${rules.outbound ? outbound : ""}${rules.served || rules.outbound ? "" : "  []\n"}`;
}

function policy(rules: { served?: boolean; outbound?: boolean }, keepConntrack = false): void {
  lab.policy(policyText(rules), { keepConntrack });
}

/** The entry as an earlier build's ids cut left it: blocked, prevent, no MOAT_CT_IDS_CUT. */
function cutByEarlierBuild(conntrack: Datapath["conntrackMap"], e: ConntrackEntry): void {
  e.value.verdict = EventType.blocked;
  e.value.mode = Mode.prevent;
  e.value.flags &= ~CtFlag.idsCut;
  writeConntrack(conntrack, e);
}

const peerSends = () => lab.run("xdp", fromPeer).verdict;
const serverSends = () => lab.run("tc", fromServer).verdict;
const flows = () => [...lab.dp.conntrack()].filter((e) => e.protocol === 17);

test("a flow an earlier build's ids cut blocked stays blocked after the adoption and reloads", () => {
  policy({ served: true, outbound: true });
  assert.equal(peerSends(), "pass");
  const [e] = flows();
  assert.ok(e);
  cutByEarlierBuild(lab.dp.conntrackMap, e);
  assert.equal(peerSends(), "drop", "cut");
  // what a daemon that adopts the table does before its first apply
  const marking = markIdsCuts(lab.dp.object);
  for (let i = 0; i < 2; i++) {
    // the new daemon's first apply, then a later reload: new generations of the same rules
    policy({ served: true, outbound: true }, true);
    assert.equal(peerSends(), "drop", `reload ${i + 1}: the peer's`);
    assert.equal(serverSends(), "drop", `reload ${i + 1}: the server's`);
  }
  assert.equal(flows()[0]?.verdict, "blocked");
  assert.equal(marking.marked, 1, "one entry marked");
});

test("a flow its own rule blocked is left to the next reload's rules", () => {
  policy({ served: true });
  assert.equal(serverSends(), "drop", "egress blocks the server's first datagram");
  assert.equal(markIdsCuts(lab.dp.object).marked, 0);
  policy({ served: true, outbound: true }, true);
  assert.equal(serverSends(), "pass", "re-judged: egress lets it out");
  assert.equal(peerSends(), "pass", "the peer's reply");
  assert.equal(flows()[0]?.verdict, "allowed");
});

test("a flow let through stays let through", () => {
  policy({ served: true, outbound: true });
  assert.equal(peerSends(), "pass");
  assert.equal(serverSends(), "pass");
  assert.equal(markIdsCuts(lab.dp.object).marked, 0);
  policy({ served: true, outbound: true }, true);
  assert.deepEqual([peerSends(), serverSends()], ["pass", "pass"]);
  assert.equal(flows()[0]?.verdict, "allowed");
});

test("a restart that adopts the pinned table keeps an earlier build's ids cut blocked", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-idscut-${process.pid}`;
  const image = { packet: compile(parsePolicy(policyText({ served: true, outbound: true }), "t")) };
  const start = () => Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
  const peer = (dp: Datapath) => dp.xdp.testRun({ data: packet(fromPeer) }).retval;
  const server = (dp: Datapath) => dp.tc.testRun({ data: packet(fromServer) }).retval;
  let first: Datapath | null = null;
  let next: Datapath | null = null;
  try {
    first = start();
    assert.equal(peer(first), XDP_PASS);
    const e = [...first.conntrack()].find((c) => c.protocol === 17);
    assert.ok(e);
    cutByEarlierBuild(first.conntrackMap, e);
    assert.equal(peer(first), XDP_DROP, "cut");
    // kill -9 or a hand-over: the pins stay
    first.stop({ keepPins: true });
    first = null;

    next = start();
    assert.ok(next.adoption?.adopted.includes("conntrack"), next.pinnedReport().join("\n"));
    assert.equal(peer(next), XDP_DROP, "the peer's, under the new daemon's policy");
    assert.equal(server(next), TC_ACT_SHOT, "the server's");
    assert.ok(
      next.pinnedReport().includes("pinned conntrack maps: 1 ids cuts marked to stay blocked"),
      next.pinnedReport().join("\n"),
    );
  } finally {
    first?.stop();
    next?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});
