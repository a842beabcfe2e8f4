// The DNS proxy's limits against hostile local clients and servers, with the real proxy on
// loopback (the kernel's record of who asked is stood in for: a client on 127.0.0.2 is user 1000,
// one on 127.0.0.1 is root):
// - a query whose header counts other than one question is answered FORMERR from its header alone
//   (12 bytes), whatever follows;
// - an answer that no longer fits a TCP DNS message once moat rewrote it becomes SERVFAIL;
// - one user's queries stuck on a server that never answers, and its TCP connections, take at most
//   their share: root's lookups are still answered.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, type Server, type Socket } from "node:net";
import dnsPacket from "dns-packet";
import type { DnsOwner } from "../../src/dns/index.ts";
import type { DnsProxyOptions } from "../../src/dns/proxy.ts";
import {
  aAnswer,
  askUdp,
  decoded,
  openLoopbackProxy,
  udpUpstream,
  type LoopbackProxy,
} from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - { name: no-ads, direction: egress, action: block, layer7: { dns: { name: ["**.ads.example"] } } }
`;

const ROOT: DnsOwner = { pid: 1, uid: 0, cgroupId: 7n, comm: "dig", exeIno: 1n, exeDev: 1 };
const USER: DnsOwner = { pid: 2, uid: 1000, cgroupId: 8n, comm: "flood", exeIno: 2n, exeDev: 1 };
/** Clients on this address are the user's; the others root's. */
const USER_IP = "127.0.0.2";

interface Server53 {
  ip: string;
  port: number;
}

/** The proxy; the user's queries go to `userServer`, root's to `rootServer`. */
async function start(
  t: TestContext,
  rootServer: Server53,
  userServer: Server53 = rootServer,
  more: Partial<DnsProxyOptions> = {},
): Promise<LoopbackProxy> {
  const p = await openLoopbackProxy({
    policy: POLICY,
    original: (peer) =>
      peer.ip === USER_IP
        ? { original: userServer, owner: USER }
        : { original: rootServer, owner: ROOT },
    path: "/usr/bin/dig",
    more,
  });
  t.after(() => p.proxy.close());
  return p;
}

const query = (name: string, id = 0x1111) =>
  dnsPacket.encode({
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name }],
  });

const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

/** A UDP server on 127.0.0.1: answers with `answer(query)`, or never (null). */
async function udpServer(
  t: TestContext,
  answer: ((q: Buffer) => Buffer) | null,
): Promise<Server53> {
  const s = await udpUpstream("127.0.0.1", answer);
  t.after(() => s.close());
  return { ip: s.ip, port: s.port };
}

/** A TCP DNS server on 127.0.0.1: answers each query with `answer(query)`, or never (null). */
async function tcpServer(
  t: TestContext,
  answer: ((q: Buffer) => Buffer) | null,
): Promise<Server53> {
  const held: Socket[] = [];
  const server: Server = createServer((c) => {
    held.push(c);
    c.on("error", () => {});
    let buf = Buffer.alloc(0);
    c.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        if (answer) c.write(framed(answer(q)));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const c of held) c.destroy();
    server.close();
  });
  return { ip: "127.0.0.1", port: (server.address() as { port: number }).port };
}

/** A TCP connection to the proxy from `from`; resolves once connected. */
function tcpClient(port: number, from = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, localAddress: from }, () => resolve(s));
    s.on("error", reject);
  });
}

/** The next answer on `s`, or null when the proxy closed the connection first. */
function tcpAnswer(s: Socket, timeoutMs = 10_000): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error("no answer and not closed")), timeoutMs);
    const finish = (v: Buffer | null) => {
      clearTimeout(timer);
      s.off("data", onData);
      resolve(v);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    };
    s.on("data", onData);
    s.once("close", () => finish(null));
  });
}

/** One UDP query to the proxy from `from`; its answer. */
const udpAsk = (port: number, msg: Buffer, from = "127.0.0.1") =>
  askUdp(port, msg, { timeoutMs: 5000, from });

const rcodeOf = (m: Buffer) => decoded(m).rcode;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `done()` or 20 s. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) await sleep(50);
}

test("a query of 13,104 questions is answered FORMERR from its header: 12 bytes", async (t) => {
  const up = await tcpServer(t, aAnswer);
  const p = await start(t, up);
  const count = Math.floor((65_535 - 12) / 5); // every question the root name, type A
  const header = Buffer.from([0x12, 0x34, 0x01, 0x00, count >> 8, count & 0xff, 0, 0, 0, 0, 0, 0]);
  const big = Buffer.concat([header, Buffer.alloc(count * 5)]);
  for (let i = 0; i < count; i++) big.writeUInt32BE(0x00010001, 12 + i * 5 + 1);
  const c = await tcpClient(p.proxy.addresses().tcp.port);
  t.after(() => c.destroy());
  c.write(framed(big));
  const answer = await tcpAnswer(c);
  assert.ok(answer, "answered, not closed");
  assert.equal(answer.length, 12, "the header alone");
  const d = decoded(answer);
  assert.equal(d.id, 0x1234);
  assert.equal(d.type, "response");
  assert.equal(d.rcode, "FORMERR");
  assert.equal(d.questions?.length, 0);
  assert.equal(p.proxy.stats.refused, 1);
  assert.deepEqual(
    p.events.filter((e) => e.type === "dns").map((e) => e.dns?.rcode),
    ["FORMERR"],
  );
});

/**
 * A server's answer of 3,800 A records named by a pointer to the question, and an HTTPS record
 * with an ipv4hint: moat takes the hint out and writes the rest again, uncompressed (95,051 bytes).
 */
function growingAnswer(q: Buffer): Buffer {
  const question = q.subarray(12, q.indexOf(0, 12) + 5);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.readUInt16BE(0), 0);
  header.writeUInt16BE(0x8180, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(3801, 6);
  const a = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
  const https = Buffer.from([
    0xc0, 0x0c, 0, 65, 0, 1, 0, 0, 0, 60, 0, 11, 0, 1, 0, 0, 4, 0, 4, 1, 2, 3, 4,
  ]);
  return Buffer.concat([header, question, ...Array<Buffer>(3800).fill(a), https]);
}

test("an answer that outgrows a TCP DNS message once its hints are taken out is SERVFAIL", async (t) => {
  const up = await tcpServer(t, growingAnswer);
  const p = await start(t, up);
  const c = await tcpClient(p.proxy.addresses().tcp.port);
  t.after(() => c.destroy());
  c.write(framed(query("many.example", 5)));
  const answer = await tcpAnswer(c);
  assert.ok(answer, "answered, not closed");
  assert.equal(rcodeOf(answer), "SERVFAIL");
  assert.equal(dnsPacket.decode(answer).id, 5);
  // the proxy serves on
  const next = await tcpClient(p.proxy.addresses().tcp.port);
  t.after(() => next.destroy());
  next.write(framed(query("other.example", 6)));
  const other = await tcpAnswer(next);
  assert.ok(other);
  assert.equal(rcodeOf(other), "SERVFAIL", "the same server, the same answer");
});

test("one user's 4,096 queries stuck on a silent server leave root's lookups answered", async (t) => {
  const answering = await udpServer(t, aAnswer);
  const silent = await udpServer(t, null);
  const p = await start(t, answering, silent, { timeoutMs: 60_000 });
  const port = p.proxy.addresses().udp.port;
  const flood: UdpSocket[] = [];
  t.after(() => {
    for (const s of flood) s.close();
  });
  for (let i = 0; i < 16; i++) {
    const s = createSocket("udp4");
    await new Promise<void>((resolve) => s.bind(0, USER_IP, resolve));
    flood.push(s);
  }
  const sent = 4096;
  for (let i = 0; i < sent; i++) {
    flood[i % flood.length]!.send(query(`q${i}.example`, i), port, "127.0.0.1");
    // paced: the proxy takes each before the socket's buffer would drop one
    if (i % 128 === 127) await until(() => p.proxy.stats.queries > i - 64);
  }
  await until(() => p.proxy.stats.queries >= sent);
  assert.equal(p.proxy.stats.queries, sent, "every query of the flood reached the proxy");

  const answers = [];
  for (let i = 0; i < 4; i++) answers.push((await udpAsk(port, query("root.example", i))).rcode);
  assert.deepEqual(answers, ["NOERROR", "NOERROR", "NOERROR", "NOERROR"], "root is answered");
  assert.ok(p.proxy.stats.overloaded > 0, "the user's queries past its share were refused");
  const extra = await udpAsk(port, query("more.example", 9), USER_IP);
  assert.equal(extra.rcode, "SERVFAIL", "past its share, the user's next query fails at once");
});

test("one user's 256 TCP connections, each with 16 queries stuck, leave root a connection", async (t) => {
  const answering = await tcpServer(t, aAnswer);
  const silent = await tcpServer(t, null);
  const p = await start(t, answering, silent, { timeoutMs: 60_000 });
  const port = p.proxy.addresses().tcp.port;
  const flood: Socket[] = [];
  t.after(() => {
    for (const s of flood) s.destroy();
  });
  const sixteen = Buffer.concat(Array.from({ length: 16 }, (_, i) => framed(query(`t${i}.x`, i))));
  for (let i = 0; i < 256; i++) {
    const s = await tcpClient(port, USER_IP).catch(() => null);
    if (!s) continue;
    s.on("error", () => {});
    s.write(sixteen);
    flood.push(s);
  }
  let last = -1;
  while (p.proxy.stats.queries !== last) {
    last = p.proxy.stats.queries;
    await sleep(300);
  }
  const c = await tcpClient(port);
  t.after(() => c.destroy());
  c.on("error", () => {});
  c.write(framed(query("root.example", 77)));
  const answer = await tcpAnswer(c);
  assert.ok(answer, "root's connection is served, not closed");
  assert.equal(rcodeOf(answer), "NOERROR");
  const open = flood.filter((s) => !s.destroyed).length;
  assert.ok(open <= 64, `${open} of the user's connections still open (its share: 64)`);
});
