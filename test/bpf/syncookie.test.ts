// flood.syn through BPF_PROG_TEST_RUN: SYNs to a defended port over its rate put it under attack;
// then XDP answers an allowed SYN with a SYN-ACK carrying a cookie (IPv4 and IPv6: addresses,
// ports and MACs swapped, ack = seq + 1, the client's options echoed, both checksums right), the
// ACK that returns it checks at the cookie program and one with a wrong number does not. The tc
// ingress program does the same with a redirect back out (the frame cut or grown to the SYN-ACK),
// its egress twin lets that SYN-ACK out unjudged, and it checks the ACK itself. Detect mode counts
// and answers nothing; a port not defended, or a blocked SYN, is judged as usual.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Server } from "node:net";
import { KernelLab, TC_ACT_OK } from "../helpers/kernel-lab.ts";
import { checksum, packet, type PacketSpec } from "../helpers/packets.ts";
import { parseAddress } from "../../src/datapath/address.ts";
import type { FloodCounters } from "../../src/datapath/flood-maps.ts";

/** Two ports with a listener each in this namespace: the cookie check hands ACKs to listeners. */
const policy = (mode: "detect" | "prevent", [p4, p6]: number[]) => `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [${p4}, ${p6}] } }
flood:
  syn: { ports: [${p4}, ${p6}, 8080], rate: 1/s, burst: 1, hold: 1m, mode: ${mode} }
`;

async function listener(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "::", resolve));
  return server;
}
const portOf = (s: Server) => (s.address() as AddressInfo).port;

/** A Linux client's SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7
 * (the last option ends the header) */
const SYN_OPTIONS = Buffer.from([
  2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
]);

const tcpAt = (frame: Buffer) => (frame.readUInt16BE(12) === 0x0800 ? 14 + 20 : 14 + 40);

function tcpChecksumOk(frame: Buffer, src: string, dst: string): boolean {
  const at = tcpAt(frame);
  const tcp = frame.subarray(at);
  const s = parseAddress(src);
  const d = parseAddress(dst);
  const pseudo = Buffer.alloc(s.length === 4 ? 12 : 40);
  if (s.length === 4) {
    s.copy(pseudo, 0);
    d.copy(pseudo, 4);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(tcp.length, 10);
  } else {
    s.copy(pseudo, 0);
    d.copy(pseudo, 16);
    pseudo.writeUInt32BE(tcp.length, 32);
    pseudo[39] = 6;
  }
  return checksum(pseudo, tcp) === 0;
}

function options(frame: Buffer): Map<number, Buffer> {
  const at = tcpAt(frame);
  const end = at + (frame[at + 12]! >> 4) * 4;
  const out = new Map<number, Buffer>();
  for (let i = at + 20; i < end;) {
    const kind = frame[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    out.set(kind, frame.subarray(i + 2, i + frame[i + 1]!));
    i += frame[i + 1]!;
  }
  return out;
}

const delta = (a: FloodCounters, b: FloodCounters) =>
  Object.fromEntries(
    (Object.keys(b) as (keyof FloodCounters)[]).flatMap((k) =>
      b[k] !== a[k] ? [[k, Number(b[k] - a[k])]] : [],
    ),
  );

describe("flood.syn: cookies", () => {
  let lab: KernelLab;
  let servers: Server[] = [];
  let ports: number[] = [];
  before(async () => {
    servers = [await listener(), await listener()];
    ports = servers.map(portOf);
    lab = new KernelLab();
    lab.policy(policy("prevent", ports));
    assert.ok(lab.dp.tcCookie, "this kernel has bpf_sk_assign_tcp_reqsk");
  });
  after(() => {
    lab.close();
    for (const s of servers) s.close();
  });

  const families = [
    { v: "IPv4", client: "198.51.100.5", server: "10.0.0.1", mss: 1460, ipLen: 20, at: 0 },
    { v: "IPv6", client: "2001:db8::5", server: "fd00:2::1", mss: 1440, ipLen: 40, at: 1 },
  ];
  type Family = (typeof families)[number];
  const syn = (f: Family, sport: number, tcpOptions = SYN_OPTIONS): PacketSpec => ({
    src: f.client,
    dst: f.server,
    proto: "tcp",
    sport,
    dport: ports[f.at]!,
    flags: "S",
    seq: 1000 + sport,
    tcpOptions,
  });
  const ack = (f: Family, sport: number, ackNo: number): PacketSpec => ({
    src: f.client,
    dst: f.server,
    proto: "tcp",
    sport,
    dport: ports[f.at]!,
    flags: "A",
    seq: 1000 + sport + 1,
    ack: ackNo,
  });

  /** `d` is the SYN-ACK to syn(f, sport): headers, checksums, options. Returns its cookie. */
  function assertSynAck(d: Buffer, f: Family, sport: number, offered: "options" | "none"): number {
    const sent = packet(syn(f, sport));
    assert.deepEqual(d.subarray(0, 6), sent.subarray(6, 12), "to the sender's MAC");
    assert.deepEqual(d.subarray(6, 12), sent.subarray(0, 6), "from ours");
    const at = tcpAt(d);
    assert.equal(d.length, at + 32, "headers only: 20 bytes of TCP and 12 of options");
    if (f.ipLen === 20) {
      assert.equal(checksum(d.subarray(14, 34)), 0, "IPv4 header checksum");
      assert.equal(d.readUInt16BE(16), 20 + 32, "IPv4 total length");
    } else {
      assert.equal(d.readUInt16BE(18), 32, "IPv6 payload length");
    }
    assert.equal(d.readUInt16BE(at), ports[f.at]!, "from the server's port");
    assert.equal(d.readUInt16BE(at + 2), sport, "to the client's port");
    assert.equal(d.readUInt32BE(at + 8), 1000 + sport + 1, "acknowledges the SYN");
    assert.equal(d[at + 13], 0x12, "SYN+ACK");
    assert.ok(tcpChecksumOk(d, f.server, f.client), "TCP checksum");
    const o = options(d);
    assert.equal(o.get(2)?.readUInt16BE(0), f.mss, "our MSS");
    if (offered === "options") {
      assert.equal(o.get(3)?.[0], 7, "our window scale");
      assert.ok(o.has(4), "SACK permitted");
    } else {
      assert.ok(!o.has(3) && !o.has(4), "no window scale nor SACK to a SYN without them");
    }
    return d.readUInt32BE(at + 4);
  }

  for (const f of families) {
    test(`${f.v}: under attack an allowed SYN gets a cookie SYN-ACK; its ACK checks`, () => {
      const before = lab.dp.floodCounters();
      // the bucket holds one SYN: the next ones are over the rate, the port is under attack
      lab.run("xdp", syn(f, 40000));
      const r = lab.run("xdp", syn(f, 40001));
      assert.equal(r.verdict, "tx", "answered by XDP");
      const cookie = assertSynAck(r.data, f, 40001, "options");
      assert.ok(lab.dp.tcCookie);
      const good = lab.dp.tcCookie.testRun({ data: packet(ack(f, 40001, cookie + 1)) });
      assert.equal(good.retval, TC_ACT_OK);
      // another number: a changed hash, or changed bits of the MSS, window scale or SACK
      const bad = lab.dp.tcCookie.testRun({ data: packet(ack(f, 40001, cookie + 2)) });
      assert.equal(bad.retval, TC_ACT_OK, "a wrong cookie goes on to the kernel, which resets it");
      const { assigned = 0, assignFailed = 0, ...seen } = delta(before, lab.dp.floodCounters());
      assert.deepEqual(seen, {
        syn: 2,
        synOver: 1,
        cookieSent: 1,
        cookieValid: 1,
        cookieInvalid: 1,
      });
      // handed to the listener (a test run's packet is not at a real ingress: the kernel may
      // refuse it there)
      assert.equal(assigned + assignFailed, 1);
    });

    test(`${f.v}, tc ingress: the SYN-ACK is redirected back out, passes egress unjudged; its ACK checks`, () => {
      lab.run("tc-ingress", syn(f, 42000));
      const before = lab.dp.floodCounters();
      const r = lab.run("tc-ingress", syn(f, 42001));
      assert.equal(r.verdict, "tx", "redirected out of the interface it came in by");
      const cookie = assertSynAck(r.data, f, 42001, "options");

      // the redirected SYN-ACK passes moat's egress program: neither judged nor dropped
      const ctBefore = lab.counters();
      const out = lab.run("tc", r.data);
      assert.equal(out.verdict, "pass");
      assert.deepEqual(KernelLab.delta(ctBefore, lab.counters(), ["new", "blocked"]), {
        new: 0,
        blocked: 0,
      });
      assert.deepEqual(lab.events(), [], "no connection reported");

      // its ACK, at the same program, before the judging
      const good = lab.run("tc-ingress", ack(f, 42001, cookie + 1));
      assert.equal(good.verdict, "pass");
      const bad = lab.run("tc-ingress", ack(f, 42001, cookie + 2));
      assert.equal(bad.verdict, "pass", "a wrong cookie goes on to the kernel, which resets it");
      const { assigned = 0, assignFailed = 0, ...seen } = delta(before, lab.dp.floodCounters());
      assert.deepEqual(seen, {
        syn: 1,
        synOver: 1,
        cookieSent: 1,
        cookieEgress: 1,
        cookieValid: 1,
        cookieInvalid: 1,
      });
      assert.equal(assigned + assignFailed, 1);
    });

    test(`${f.v}, tc ingress: a SYN without options grows into a SYN-ACK without window scale or SACK`, () => {
      lab.run("tc-ingress", syn(f, 43000, Buffer.alloc(0)));
      const r = lab.run("tc-ingress", syn(f, 43001, Buffer.alloc(0)));
      assert.equal(r.verdict, "tx");
      assert.ok(r.data.length > packet(syn(f, 43001, Buffer.alloc(0))).length, "grown");
      const cookie = assertSynAck(r.data, f, 43001, "none");
      // the cookie carries MSS 536 (none offered), no window scale, no SACK: the ACK checks
      const before = lab.dp.floodCounters();
      lab.run("tc-ingress", ack(f, 43001, cookie + 1));
      assert.equal(delta(before, lab.dp.floodCounters()).cookieValid, 1);
    });
  }

  test("tc egress judges a SYN-ACK without a valid cookie as usual", () => {
    const before = lab.dp.floodCounters();
    const ctBefore = lab.counters();
    const forged = lab.run("tc", {
      src: "10.0.0.1",
      dst: "198.51.100.5",
      proto: "tcp",
      sport: ports[0]!,
      dport: 44000,
      flags: "SA",
      seq: 12345,
      ack: 1000,
    });
    assert.equal(forged.verdict, "pass", "egress: allow");
    assert.equal(KernelLab.delta(ctBefore, lab.counters(), ["new"]).new, 1, "judged");
    assert.equal(delta(before, lab.dp.floodCounters()).cookieEgress, undefined);
  });

  test("tc ingress: a SYN with a VLAN tag in the frame goes to the kernel, counted", () => {
    const before = lab.dp.floodCounters();
    const r = lab.run("tc-ingress", { ...syn(families[0]!, 45000), vlans: [7] });
    assert.equal(r.verdict, "pass");
    assert.equal(delta(before, lab.dp.floodCounters()).cookieUnsent, 1);
  });

  for (const hook of ["xdp", "tc-ingress"] as const)
    test(`${hook}: a blocked SYN and a SYN to a port not defended are judged as usual`, () => {
      const before = lab.dp.floodCounters();
      const blocked = lab.run(hook, {
        src: "198.51.100.9",
        dst: "10.0.0.1",
        proto: "tcp",
        dport: 8080,
        flags: "S",
      });
      assert.equal(blocked.verdict, "drop", "port 8080 is defended but no rule allows it");
      const other = lab.run(hook, {
        src: "198.51.100.9",
        dst: "10.0.0.1",
        proto: "tcp",
        dport: 22,
        flags: "S",
      });
      assert.equal(other.verdict, "drop");
      assert.equal(delta(before, lab.dp.floodCounters()).cookieSent, undefined);
    });

  test("detect: the port under attack is counted, its SYNs go to the kernel", () => {
    lab.policy(policy("detect", ports));
    const before = lab.dp.floodCounters();
    for (let i = 0; i < 6; i++) {
      const r = lab.run(i < 3 ? "xdp" : "tc-ingress", {
        src: "198.51.100.7",
        dst: "10.0.0.1",
        proto: "tcp",
        sport: 41000 + i,
        dport: ports[0]!,
        flags: "S",
      });
      assert.equal(r.verdict, "pass");
    }
    const d = delta(before, lab.dp.floodCounters());
    assert.equal(d.cookieSent, undefined, "nothing answered");
    assert.equal(d.cookieDetected, 6, "every SYN of the attack counted as what prevent answers");
  });
});
