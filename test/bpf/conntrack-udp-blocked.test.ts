// A UDP flow blocked from its first datagram, none of whose datagrams passed: that datagram
// reached no one, and a datagram from the other side on the same ports opens the flow anew, judged
// by the policy as opened by its sender. The blocked side's own repeats stay dropped with it, and
// a flow that was let through and blocked later (an ids cut, a reload) stays blocked both ways;
// an ids cut outlasts later reloads.
// Real sockets on loopback (a server on one port, its peer on another), frames through
// BPF_PROG_TEST_RUN.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { KernelLab } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { EventType, Mode } from "../../src/datapath/abi.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";
import { cutIdsConnection } from "../../src/datapath/ids-cut.ts";
import type { IdsCopy } from "../../src/datapath/ids-record.ts";

const L = "127.0.0.1";

let lab: KernelLab;
let server: dgram.Socket;
let peer: dgram.Socket;
/** the peer's datagram to the server (arrives), the server's to the peer (leaves) */
let fromPeer: PacketSpec;
let fromServer: PacketSpec;

before(async () => {
  lab = new KernelLab();
  server = dgram.createSocket("udp4");
  peer = dgram.createSocket("udp4");
  await new Promise<void>((r) => server.bind(0, L, r));
  await new Promise<void>((r) => peer.bind(0, L, r));
  const [sp, pp] = [server.address().port, peer.address().port];
  fromPeer = { src: L, dst: L, proto: "udp", sport: pp, dport: sp, payload: 16 };
  fromServer = { src: L, dst: L, proto: "udp", sport: sp, dport: pp, payload: 16 };
});
after(() => {
  server.close();
  peer.close();
  lab.close();
});

/** Both defaults block; `served` lets the peer's datagrams to the server in, `outbound` the
 * server's to the peer out. */
function policy(rules: { served?: boolean; outbound?: boolean }, keepConntrack = false): void {
  const served = `  - name: served
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: udp, port: [${server.address().port}] }
`;
  const outbound = `  - name: outbound
    direction: egress
    action: allow
    layer4: { protocol: udp, port: [${peer.address().port}] }
`;
  lab.policy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
${rules.served ? served : ""}${rules.outbound ? outbound : ""}${rules.served || rules.outbound ? "" : "  []\n"}`,
    { keepConntrack },
  );
}

const seen = () => lab.events().map((e) => `${e.type} ${e.direction} ${e.rule}`);
const peerSends = () => lab.run("xdp", fromPeer).verdict;
const serverSends = () => lab.run("tc", fromServer).verdict;
const flows = () => [...lab.dp.conntrack()].filter((e) => e.protocol === 17);

test("the server's blocked datagram, then its peer's that ingress allows: the flow is the peer's", () => {
  policy({ served: true });
  assert.equal(serverSends(), "drop", "the server's first, egress");
  assert.equal(serverSends(), "drop", "its repeat, with it");
  assert.deepEqual(seen(), ["blocked egress default"]);
  assert.equal(peerSends(), "pass", "the peer's, judged by the ingress rules");
  assert.equal(serverSends(), "pass", "the server's answer");
  assert.equal(peerSends(), "pass");
  assert.deepEqual(seen(), ["allowed ingress served"]);
  assert.deepEqual(
    flows().map((e) => [e.direction, e.verdict]),
    [["ingress", "allowed"]],
  );
});

test("the peer's blocked datagram, then the server's that egress allows: the flow is this host's", () => {
  policy({ outbound: true });
  assert.equal(peerSends(), "drop", "the peer's first, ingress");
  assert.equal(peerSends(), "drop", "its repeat, with it");
  assert.equal(serverSends(), "pass", "this host's, judged by the egress rules");
  assert.equal(peerSends(), "pass", "the peer's answer");
  assert.deepEqual(
    flows().map((e) => [e.direction, e.verdict]),
    [["egress", "allowed"]],
  );
});

test("a flow the policy blocks from either side stays blocked, reported once from each", () => {
  policy({});
  assert.equal(serverSends(), "drop");
  assert.equal(peerSends(), "drop");
  assert.deepEqual(seen(), ["blocked egress default", "blocked ingress default"]);
  for (let i = 0; i < 3; i++) {
    assert.equal(serverSends(), "drop");
    assert.equal(peerSends(), "drop");
  }
  assert.deepEqual(seen(), [], "no new flow at each turn");
});

test("an allowed flow that an ids cut blocks stays blocked both ways", () => {
  policy({ served: true, outbound: true });
  assert.equal(peerSends(), "pass");
  assert.equal(serverSends(), "pass");
  const [e] = flows();
  assert.ok(e);
  // as src/datapath/ids-cut.ts turns the entry to blocked
  e.value.verdict = EventType.blocked;
  e.value.mode = Mode.prevent;
  writeConntrack(lab.dp.conntrackMap, e);
  assert.equal(serverSends(), "drop", "the server's, which egress would allow as new");
  assert.equal(peerSends(), "drop", "the peer's");
  assert.equal(serverSends(), "drop");
});

/** What an ids copy of the flow in `e` says of it: enough for the cut to find its entry. */
const copyOf = (
  e: ConntrackEntry,
): Pick<IdsCopy, "connId" | "family" | "protocol" | "local" | "remote" | "ifindex"> => ({
  connId: e.id,
  family: e.family,
  protocol: "udp",
  local: e.local,
  remote: e.remote,
  ifindex: e.ifindex,
});

test("a flow an ids cut blocked stays blocked after reloads that would let it through", () => {
  policy({ served: true, outbound: true });
  assert.equal(peerSends(), "pass");
  const [e] = flows();
  assert.ok(e);
  // a forwarded flow: no socket of this host to destroy, the entry alone stops it
  const cut = cutIdsConnection(lab.dp.conntrackMap, copyOf(e) as IdsCopy, {
    sockDestroy: () => false,
  });
  assert.deepEqual(cut, { blocked: true, destroyed: false });
  assert.equal(peerSends(), "drop", "cut");
  for (let i = 0; i < 2; i++) {
    // a set change, a host change: a new generation of the same rules
    policy({ served: true, outbound: true }, true);
    assert.equal(peerSends(), "drop", `reload ${i + 1}: the peer's`);
    assert.equal(serverSends(), "drop", `reload ${i + 1}: the server's`);
  }
  assert.equal(flows()[0]?.verdict, "blocked");
});

test("an allowed flow that a reload blocks stays blocked both ways", () => {
  policy({ served: true, outbound: true });
  assert.equal(peerSends(), "pass");
  policy({ outbound: true }, true);
  assert.equal(peerSends(), "drop", "re-judged: no ingress rule lets it in");
  assert.equal(serverSends(), "drop", "the server's, which egress would allow as new");
  assert.equal(peerSends(), "drop");
});

test("a flow blocked from its start, let through by a reload and blocked by the next, stays blocked both ways", () => {
  policy({ outbound: true });
  assert.equal(peerSends(), "drop", "blocked from its first datagram");
  policy({ served: true, outbound: true }, true);
  assert.equal(peerSends(), "pass", "re-judged: let in");
  policy({ outbound: true }, true);
  assert.equal(peerSends(), "drop", "re-judged: blocked");
  assert.equal(serverSends(), "drop", "the server's, which egress would allow as new");
  assert.equal(peerSends(), "drop");
});

test("a flow blocked from its start that a reload lets out: the peer's datagram after the reload is its reply", () => {
  policy({});
  assert.equal(serverSends(), "drop", "the server's first: egress blocked");
  policy({ outbound: true }, true);
  // the entry is still the old policy's until a packet re-judges it: the peer's comes first
  assert.equal(peerSends(), "pass", "a reply to the flow the reload lets out");
  assert.deepEqual(
    [serverSends(), serverSends(), peerSends()],
    ["pass", "pass", "pass"],
    "the flow the reloaded policy allows",
  );
  assert.deepEqual(
    flows().map((e) => [e.direction, e.verdict]),
    [["egress", "allowed"]],
  );
});

test("a datagram arriving with the server's own address and port (a forger's) does not stop the server's flow", () => {
  policy({ outbound: true });
  // arriving, it is judged as a peer's: ingress blocks it (the host's stack would drop it too)
  assert.equal(lab.run("xdp", fromServer).verdict, "drop");
  assert.deepEqual(
    [serverSends(), serverSends(), peerSends()],
    ["pass", "pass", "pass"],
    "the server's own flow, which egress allows",
  );
  assert.deepEqual(
    flows().map((e) => [e.direction, e.verdict]),
    [["egress", "allowed"]],
  );
});

test("a datagram arriving with the server's own address and port that ingress lets in does not let the server's out", () => {
  lab.policy(`version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - { name: to-peer-port, direction: ingress, action: allow, layer4: { protocol: udp, port: [${peer.address().port}] } }
`);
  // arriving, it is judged as a peer's: the ingress rule lets it in (the host's stack drops it)
  assert.equal(lab.run("xdp", fromServer).verdict, "pass");
  assert.deepEqual(
    [serverSends(), serverSends()],
    ["drop", "drop"],
    "the server's own datagrams, which egress blocks",
  );
  assert.deepEqual(
    flows().map((e) => [e.direction, e.verdict]),
    [["egress", "blocked"]],
  );
});

test("a datagram arriving with the server's own address and port that ingress lets in does not let its peer in to the server", () => {
  lab.policy(`version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - { name: to-peer-port, direction: ingress, action: allow, layer4: { protocol: udp, port: [${peer.address().port}] } }
`);
  // a forger's datagram, with the server's address and port, to the peer's port: let in
  assert.equal(lab.run("xdp", fromServer).verdict, "pass");
  // the peer's datagram to the server's port, which ingress blocks: judged as its own flow
  assert.equal(peerSends(), "drop", "the peer's datagram to the server");
  assert.ok(seen().includes("blocked ingress default"), "reported as the peer's, blocked");
});
