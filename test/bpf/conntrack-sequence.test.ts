// A tracked tcp connection is not changed by packets whose sequence numbers its ends never sent:
// a reset or fin counts only at its sender's sequence end (or a little below it), a reset from an
// end that has sent nothing only as the answer to the other end's syn, and a syn on the tuple of
// a closed connection opens a new one only once the host's socket has closed too. Off-path
// attackers (who guess) and a connection's own peer (who knows its numbers) alike. A peer's syn
// that the policy blocked does not hold the tuple against this host's own syn. Frames through
// BPF_PROG_TEST_RUN.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { openLoopbackConnection, type LoopbackConnection } from "../helpers/loopback-connection.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: out-7070
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [7070] }
  - name: short
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [8080], max_duration: 1h }
`;

const H = "10.0.0.1";
const P = "198.51.100.1";

type Extra = Partial<PacketSpec>;
/** This host's segment to the peer (H:lport -> P:rport). */
const out = (rport: number, lport: number, flags: string, extra: Extra = {}): PacketSpec => ({
  src: H,
  dst: P,
  proto: "tcp",
  sport: lport,
  dport: rport,
  flags,
  ...extra,
});
/** The peer's segment to this host (P:rport -> H:lport). */
const inn = (rport: number, lport: number, flags: string, extra: Extra = {}): PacketSpec => ({
  src: P,
  dst: H,
  proto: "tcp",
  sport: rport,
  dport: lport,
  flags,
  ...extra,
});

let lab: KernelLab;

function entry(lport: number): ConntrackEntry {
  const found = [...lab.dp.conntrack()].find((e) => e.protocol === 6 && e.local.port === lport);
  assert.ok(found, "conntrack entry");
  return found;
}

const events = () => lab.events().map((e) => `${e.type} ${e.reason} ${e.direction}`);

before(() => (lab = KernelLab.withPolicy(POLICY)));
beforeEach(() => lab.forget());
after(() => lab.close());

describe("an outbound connection (this host at 41500 to the peer's 7070)", () => {
  /** Opens it: this host's isn 1000, the peer's 5000; the peer has sent 100 bytes. */
  function open(): void {
    assert.equal(lab.run("tc", out(7070, 41500, "S", { seq: 1000 })).verdict, "pass");
    assert.equal(lab.run("xdp", inn(7070, 41500, "SA", { seq: 5000, ack: 1001 })).verdict, "pass");
    assert.equal(lab.run("tc", out(7070, 41500, "A", { seq: 1001, ack: 5001 })).verdict, "pass");
    const data = inn(7070, 41500, "PA", { seq: 5001, ack: 1001, payload: 100 });
    assert.equal(lab.run("xdp", data).verdict, "pass");
    assert.deepEqual(events(), ["allowed new egress"]);
  }

  test("a spoofed reset then syn with sequence numbers it never sent leave it open", () => {
    open();
    // an off-path attacker, as the peer: reset, then syn, at numbers it guessed
    assert.equal(lab.run("xdp", inn(7070, 41500, "R", { seq: 12345 })).verdict, "pass");
    assert.equal(lab.run("xdp", inn(7070, 41500, "S", { seq: 54321 })).verdict, "pass");
    const more = inn(7070, 41500, "PA", { seq: 5101, ack: 1001, payload: 100 });
    assert.equal(lab.run("xdp", more).verdict, "pass", "the peer's next data still passes");
    assert.deepEqual(events(), [], "no close, no blocked connection");
    assert.equal(entry(41500).tcpState, "established");
    assert.equal(entry(41500).direction, "egress");
  });

  test("a fin out of order leaves it open; one in order is taken", () => {
    open();
    assert.equal(
      lab.run("xdp", inn(7070, 41500, "FA", { seq: 900_000, ack: 1001 })).verdict,
      "pass",
    );
    assert.equal(entry(41500).tcpState, "established");
    assert.equal(lab.run("xdp", inn(7070, 41500, "FA", { seq: 5101, ack: 1001 })).verdict, "pass");
    assert.equal(entry(41500).tcpState, "finWait");
  });

  test("a reset at the peer's sequence end closes it", () => {
    open();
    assert.equal(lab.run("xdp", inn(7070, 41500, "R", { seq: 5101 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst egress"]);
    assert.equal(entry(41500).tcpState, "closed");
  });

  test("a reset a little below the peer's end (an answer to an older segment) closes it", () => {
    open();
    assert.equal(lab.run("xdp", inn(7070, 41500, "R", { seq: 5101 - 1000 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst egress"]);
  });

  test("the peer's syn on the tuple of a connection it closed is judged by the ingress rules", () => {
    open();
    assert.equal(lab.run("xdp", inn(7070, 41500, "R", { seq: 5101 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst egress"]);
    // the peer connecting back on the same ports (to a listener there, as peers reusing their
    // listening port for outbound connections have) is an inbound connection: the ingress
    // default blocks it, it does not ride on the closed outbound one's verdict
    assert.equal(lab.run("xdp", inn(7070, 41500, "S", { seq: 777 })).verdict, "drop");
    assert.deepEqual(events(), ["blocked new ingress"]);
    assert.equal(entry(41500).direction, "ingress");
  });

  test("this host's own syn on the tuple of a connection that closed opens a new one", () => {
    open();
    assert.equal(lab.run("xdp", inn(7070, 41500, "R", { seq: 5101 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst egress"]);
    assert.equal(lab.run("tc", out(7070, 41500, "S", { seq: 90_000 })).verdict, "pass");
    assert.deepEqual(events(), ["allowed new egress"]);
  });

  test("a refused connection (its syn answered by a reset that acks it) closes", () => {
    assert.equal(lab.run("tc", out(7070, 41501, "S", { seq: 1000 })).verdict, "pass");
    assert.deepEqual(events(), ["allowed new egress"]);
    // a reset that does not ack the syn is no answer to it
    assert.equal(lab.run("xdp", inn(7070, 41501, "RA", { seq: 0, ack: 4242 })).verdict, "pass");
    assert.deepEqual(events(), []);
    assert.equal(entry(41501).tcpState, "synSent");
    assert.equal(lab.run("xdp", inn(7070, 41501, "RA", { seq: 0, ack: 1001 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst egress"]);
    assert.equal(entry(41501).tcpState, "closed");
  });
});

describe("an inbound connection with max_duration (the peer at 41600 to this host's 8080)", () => {
  /** Opens it: the peer's isn 1000, this host's 7000; the peer has sent 10 bytes. */
  function open(): ConntrackEntry {
    assert.equal(lab.run("xdp", inn(41600, 8080, "S", { seq: 1000 })).verdict, "pass");
    assert.equal(lab.run("tc", out(41600, 8080, "SA", { seq: 7000, ack: 1001 })).verdict, "pass");
    assert.equal(lab.run("xdp", inn(41600, 8080, "A", { seq: 1001, ack: 7001 })).verdict, "pass");
    const data = inn(41600, 8080, "PA", { seq: 1001, ack: 7001, payload: 10 });
    assert.equal(lab.run("xdp", data).verdict, "pass");
    assert.deepEqual(events(), ["allowed new ingress"]);
    const e = entry(8080);
    assert.ok(e.deadlineNs > 0n, "a deadline");
    return e;
  }

  /** Puts the connection's deadline in the past. */
  function expire(): void {
    const e = entry(8080);
    e.value.deadline_ns = 1n;
    writeConntrack(lab.dp.conntrackMap, e);
  }

  test("the peer's out-of-window reset then syn do not renew its deadline", () => {
    const first = open();
    // the peer itself, on its own tuple: a reset the host ignores, then a syn
    assert.equal(lab.run("xdp", inn(41600, 8080, "R", { seq: 12345 })).verdict, "pass");
    assert.equal(lab.run("xdp", inn(41600, 8080, "S", { seq: 54321 })).verdict, "pass");
    assert.deepEqual(events(), [], "no close, no new connection");
    const now = entry(8080);
    assert.equal(now.id, first.id, "the same connection");
    assert.equal(now.deadlineNs, first.deadlineNs, "the same deadline");
    // at its deadline it is cut
    expire();
    const late = inn(41600, 8080, "PA", { seq: 1011, ack: 7001, payload: 10 });
    assert.equal(lab.run("xdp", late).verdict, "pass", "as a payload-less probe");
    assert.deepEqual(events(), ["closed max_duration ingress"]);
  });

  test("a reset with this host's addresses that arrives from outside changes nothing", () => {
    open();
    // this host's reset at its own sequence end, but arriving (the peer knows the numbers)
    assert.equal(lab.run("xdp", out(41600, 8080, "R", { seq: 7001 })).verdict, "pass");
    assert.equal(lab.run("xdp", inn(41600, 8080, "S", { seq: 54321 })).verdict, "pass");
    assert.deepEqual(events(), []);
    assert.equal(entry(8080).tcpState, "established");
  });

  test("after a reset the host takes, the peer's syn is a new connection", () => {
    const first = open();
    assert.equal(lab.run("xdp", inn(41600, 8080, "R", { seq: 1011 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst ingress"]);
    assert.equal(lab.run("xdp", inn(41600, 8080, "S", { seq: 90_000 })).verdict, "pass");
    assert.deepEqual(events(), ["allowed new ingress"]);
    assert.notEqual(entry(8080).id, first.id);
  });
});

describe("a peer's syn that ingress blocked (the peer at 7070 to this host's 41700)", () => {
  /** The peer's syn, dropped: its entry stays in syn-sent, blocked, the peer its opener. */
  function blockedSyn(): ConntrackEntry {
    assert.equal(lab.run("xdp", inn(7070, 41700, "S", { seq: 3000 })).verdict, "drop");
    assert.deepEqual(events(), ["blocked new ingress"]);
    return entry(41700);
  }

  test("this host's own syn on the same ports opens its connection, judged by the egress rules", () => {
    blockedSyn();
    assert.equal(lab.run("tc", out(7070, 41700, "S", { seq: 1000 })).verdict, "pass");
    assert.deepEqual(events(), ["allowed new egress"]);
    assert.equal(lab.run("xdp", inn(7070, 41700, "SA", { seq: 5000, ack: 1001 })).verdict, "pass");
    assert.equal(entry(41700).direction, "egress");
  });

  test("the peer's syn again is its blocked connection's", () => {
    const first = blockedSyn();
    assert.equal(lab.run("xdp", inn(7070, 41700, "S", { seq: 3000 })).verdict, "drop");
    assert.deepEqual(events(), [], "a retransmission: no new connection");
    assert.equal(entry(41700).id, first.id);
  });
});

describe("a syn arriving with this host's own address and port (a forger's, to this host's 41710)", () => {
  test("the host's own syn on those ports opens its connection, judged by the egress rules", () => {
    // arriving, it is judged as a peer's: ingress blocks it (the host's stack would drop it too)
    assert.equal(lab.run("xdp", out(7070, 41710, "S", { seq: 3000 })).verdict, "drop");
    assert.deepEqual(events(), ["blocked new ingress"]);
    assert.equal(lab.run("tc", out(7070, 41710, "S", { seq: 1000 })).verdict, "pass");
    assert.deepEqual(events(), ["allowed new egress"]);
    assert.equal(lab.run("xdp", inn(7070, 41710, "SA", { seq: 5000, ack: 1001 })).verdict, "pass");
    assert.equal(entry(41710).direction, "egress");
  });
});

describe("a connection whose local socket is still open (real sockets on loopback)", () => {
  let conn: LoopbackConnection;
  before(async () => (conn = await openLoopbackConnection()));
  after(() => conn.close());

  test("a syn after a reset its socket did not take is no new connection", () => {
    lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: short
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${conn.sport}], max_duration: 1h }
`);
    assert.equal(lab.run("xdp", conn.toServer("S", { seq: 1000 })).verdict, "pass");
    assert.equal(lab.run("tc", conn.toClient("SA", { seq: 7000, ack: 1001 })).verdict, "pass");
    assert.equal(lab.run("xdp", conn.toServer("A", { seq: 1001, ack: 7001 })).verdict, "pass");
    const first = [...lab.dp.conntrack()].find((e) => e.local.port === conn.sport);
    assert.ok(first);
    lab.events();
    // a reset in order, that the server's socket never got (a bad checksum, a ttl that ends
    // before the host): moat takes the close, the host keeps the connection
    assert.equal(lab.run("xdp", conn.toServer("R", { seq: 1001 })).verdict, "pass");
    assert.deepEqual(events(), ["closed rst ingress"]);
    // the client's syn on the same tuple: the connection is still the server's socket's
    assert.equal(lab.run("xdp", conn.toServer("S", { seq: 50_000 })).verdict, "pass");
    assert.deepEqual(events(), [], "no new connection, no new deadline");
    const now = [...lab.dp.conntrack()].find((e) => e.local.port === conn.sport);
    assert.equal(now?.id, first.id);
    assert.equal(now?.deadlineNs, first.deadlineNs);
  });
});
