// A mid-stream packet with no conntrack entry (lost to an lru eviction or a restart) that the
// policy blocks as a new connection is judged again as opened the other way only when the local
// socket says so: the peer's packet, as this host's, only for a connection this host opened (its
// socket connect()ed); this host's packet, as the peer's, only for a connection a local listener
// accepted. One a local listener accepted keeps the verdict its peer's packets get, so a ban (or
// an allow rule taken away) cannot be undone by evicting the entry, even once the listener is
// gone (a one-shot server). Real sockets on loopback, frames through BPF_PROG_TEST_RUN.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { KernelLab } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { openLoopbackConnection, type LoopbackConnection } from "../helpers/loopback-connection.ts";

const L = "127.0.0.1";

const policyOf = (port: number, ban: boolean) => `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
${
  ban
    ? `  - name: ban
    direction: ingress
    action: block
    layer3: { remote: [127.0.0.1/32] }
`
    : ""
}  - name: svc
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [${port}] }
`;
const NO_SVC = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
`;

let lab: KernelLab;
let conn: LoopbackConnection;

before(async () => {
  lab = new KernelLab();
  conn = await openLoopbackConnection();
});
after(() => {
  conn.close();
  lab.close();
});

function open(): void {
  lab.policy(policyOf(conn.sport, false));
  handshake();
}

/** The connection's handshake, under the policy applied. */
function handshake(): void {
  assert.equal(lab.run("xdp", conn.toServer("S")).verdict, "pass");
  assert.equal(lab.run("tc", conn.toClient("SA")).verdict, "pass");
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "pass");
}

test("a banned peer's accepted connection stays cut once its entry is lost", () => {
  open();
  lab.policy(policyOf(conn.sport, true), { keepConntrack: true });
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "drop", "re-judged: the ban cuts it");
  lab.dp.clearConntrack(); // as an lru eviction would
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "drop", "no entry: still banned");
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "drop");
  assert.equal(lab.run("tc-ingress", conn.toServer()).verdict, "drop");
});

test("an accepted connection whose allow rule is gone stays cut once its entry is lost", () => {
  open();
  lab.policy(NO_SVC, { keepConntrack: true });
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "drop", "re-judged by the default");
  lab.dp.clearConntrack();
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "drop");
});

test("a banned peer's connection to a server that stopped listening stays cut too", async () => {
  // a one-shot server (inetd-style, `nc -l`): it accepts one client and closes its listener
  let accepted = () => {};
  const served = new Promise<void>((r) => (accepted = r));
  const once = net.createServer((s) => {
    once.close();
    s.on("data", () => {}).on("error", () => {});
    accepted();
  });
  await new Promise<void>((r) => once.listen(0, L, r));
  const port = (once.address() as net.AddressInfo).port;
  const peer = net.connect(port, L);
  try {
    await served;
    assert.equal(await refused(port), "ECONNREFUSED", "the listener is gone");
    const toOnce: PacketSpec = {
      src: L,
      dst: L,
      proto: "tcp",
      sport: peer.localPort!,
      dport: port,
      flags: "A",
    };
    lab.policy(policyOf(port, false));
    assert.equal(lab.run("xdp", { ...toOnce, flags: "S" }).verdict, "pass");
    assert.equal(lab.run("xdp", toOnce).verdict, "pass");
    lab.policy(policyOf(port, true), { keepConntrack: true });
    assert.equal(lab.run("xdp", toOnce).verdict, "drop", "re-judged: the ban cuts it");
    lab.dp.clearConntrack(); // as an lru eviction would
    assert.equal(lab.run("xdp", toOnce).verdict, "drop", "no entry, no listener: still banned");
    assert.equal(lab.run("tc-ingress", toOnce).verdict, "drop");
  } finally {
    peer.destroy();
  }
});

/** The error code of a connection attempt to the port ("" if it connected). */
function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, L);
    c.on("connect", () => {
      c.destroy();
      resolve("");
    });
    c.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });
}

test("a connection this host opened still survives the loss of its entry", () => {
  lab.policy(NO_SVC);
  // the client's side: no listener on its port, it connected out (egress allowed)
  assert.equal(lab.run("xdp", conn.toClient()).verdict, "pass");
  const e = [...lab.dp.conntrack()].find((x) => x.protocol === 6);
  assert.equal(e?.direction, "egress");
  lab.dp.clearConntrack();
  assert.equal(lab.run("tc-ingress", conn.toClient()).verdict, "pass");
});

/** Both defaults block; the listener's port is allowed in (and logged). */
const BOTH_BLOCKED = (port: number) => `
version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: svc
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${port}] }
`;

const seen = () => lab.events().map((e) => `${e.type} ${e.direction} ${e.rule}`);

test("an accepted connection whose server sends first once its entry is lost is its peer's", () => {
  lab.policy(BOTH_BLOCKED(conn.sport));
  handshake();
  lab.forget(); // as a restart that could not adopt the table would
  // the server's data is the first packet with no entry: egress, which the default blocks
  const push = conn.toClient("PA", { payload: 64 });
  assert.equal(lab.run("tc", push).verdict, "pass", "the server's data");
  assert.deepEqual(seen(), ["allowed ingress svc"], "the peer's connection, by the ingress rule");
  assert.equal(lab.run("xdp", conn.toServer()).verdict, "pass", "the client's answer");
  assert.equal(lab.run("tc", push).verdict, "pass");
  assert.equal([...lab.dp.conntrack()].find((e) => e.protocol === 6)?.direction, "ingress");
});

test("a connection this host opened stays its own once its entry is lost and it sends first", () => {
  // an ingress rule for the client's port would let the connection through if it were the peer's
  lab.policy(BOTH_BLOCKED(conn.cport));
  const push = conn.toServer("PA", { payload: 64 });
  assert.equal(lab.run("tc", push).verdict, "drop", "the client's data");
  assert.deepEqual(seen(), ["blocked egress default"], "this host's, blocked by the default");
  assert.equal(lab.run("xdp", conn.toClient()).verdict, "drop", "the peer's answer with it");
});

test("a udp socket this host connected sends as itself, whatever ingress rule its port has", async () => {
  const peer = dgram.createSocket("udp4");
  const own = dgram.createSocket("udp4");
  try {
    await new Promise<void>((r) => peer.bind(0, L, r));
    await new Promise<void>((r) => own.bind(0, L, r));
    const port = own.address().port;
    await new Promise<void>((r) => own.connect(peer.address().port, L, r));
    lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: svc-udp
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [${port}] }
`);
    const datagram: PacketSpec = {
      src: L,
      dst: L,
      proto: "udp",
      sport: port,
      dport: peer.address().port,
      payload: 16,
    };
    assert.equal(lab.run("tc", datagram).verdict, "drop", "its first datagram, egress");
    assert.deepEqual(seen(), ["blocked egress default"]);
  } finally {
    own.close();
    peer.close();
  }
});

test("a SYN arriving with the listener's own address and port that ingress lets in does not let the peer in to the listener", () => {
  lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - { name: to-client-port, direction: ingress, action: allow, layer4: { protocol: tcp, port: [${conn.cport}] } }
`);
  // a forger's SYN with the listener's address and port, to the peer's port: let in
  assert.equal(lab.run("xdp", conn.toClient("S")).verdict, "pass");
  // the peer's SYN to the listener, whose port ingress blocks: judged as its own connection
  assert.equal(lab.run("xdp", conn.toServer("S")).verdict, "drop", "the peer's SYN");
  assert.equal(lab.run("tc-ingress", conn.toServer("S")).verdict, "drop", "again, at tc");
});
