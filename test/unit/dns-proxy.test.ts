// moat's DNS proxy end to end on loopback, with a fake server and a recording binder: a loopback
// server is trusted only for queries that came through moat's own network namespace; a query of
// more or fewer than one question is answered FORMERR by moat itself; a TCP client is bounded
// (connections, unsent answers, the time a query may take to arrive).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import dnsPacket from "dns-packet";
import { netnsSocket } from "../../src/datapath/index.ts";
import type { DnsProxyOptions } from "../../src/dns/proxy.ts";
import {
  aAnswer,
  askUdp,
  openLoopbackProxy,
  udpUpstream,
  type LoopbackProxy,
  type UdpUpstream,
} from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - { name: no-ads, direction: egress, action: block, layer7: { dns: { name: ["**.ads.example"] } } }
  - { name: dns, direction: egress, action: allow, layer4: { port: [53] } }
  - { name: api, direction: egress, action: allow, layer3: { remote: [api.example.org] } }
`;

const owner = { pid: 4321, uid: 1000, cgroupId: 77n, comm: "curl", exeIno: 1234n, exeDev: 1 };

/** A UDP server on `ip` answering every question with 192.0.2.7, recording what it was asked. */
const upstream = (ip: string): Promise<UdpUpstream> => udpUpstream(ip, (q) => aAnswer(q, 300));

function start(
  server: { ip: string; port: number } | null,
  more: Partial<DnsProxyOptions> = {},
): Promise<LoopbackProxy> {
  return openLoopbackProxy({
    policy: POLICY,
    original: () => (server ? { original: server, owner } : null),
    path: "/usr/bin/curl",
    // the fake servers listen on ephemeral ports: judged as the port 53 they stand for
    judged: (facts) => ({ ...facts, remote: { ...facts.remote, port: 53 } }),
    more,
  });
}

const ask = (port: number, msg: Buffer) => askUdp(port, msg, { timeoutMs: 3000 });

const query = (names: string[], id = 0x1111) =>
  dnsPacket.encode({
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED,
    questions: names.map((name) => ({ type: "A" as const, name })),
  });

test("a loopback server binds names only for queries through moat's own network namespace", async (t) => {
  // a server on 127.0.0.2 of "another" namespace: the listener served like a container's
  const up = await upstream("127.0.0.2");
  const p = await start({ ip: up.ip, port: up.port }, { netnsSocket });
  t.after(() => {
    p.proxy.close();
    up.close();
  });
  const ports = await p.proxy.serveNetns("container", "/proc/self/ns/net");
  const viaNetns = await ask(ports.udp, query(["api.example.org"]));
  assert.equal(viaNetns.answers?.length, 1, "the answer is passed on");
  assert.equal(p.bound.length, 0, "but binds nothing");
  assert.equal(p.events[0]?.dns?.trusted, false);

  const viaHome = await ask(p.proxy.addresses().udp.port, query(["api.example.org"], 2));
  assert.equal(viaHome.answers?.length, 1);
  assert.deepEqual(
    p.bound.map((b) => b.ip),
    ["192.0.2.7"],
    "through moat's own namespace, loopback is the host's: trusted",
  );
  assert.equal(p.events[1]?.dns?.trusted, true);
});

test("a query of two questions, or none, is answered FORMERR and never asked upstream", async (t) => {
  const up = await upstream("127.0.0.1");
  const p = await start({ ip: up.ip, port: up.port });
  t.after(() => {
    p.proxy.close();
    up.close();
  });
  const port = p.proxy.addresses().udp.port;
  // judged by its first name alone (the others are not read), for its events
  const two = await ask(port, query(["x.ads.example", "harmless.test"], 7));
  assert.equal(two.rcode, "FORMERR");
  assert.equal(two.id, 7);
  assert.equal(two.answers?.length, 0);
  const none = await ask(port, query([], 8));
  assert.equal(none.rcode, "FORMERR");
  assert.equal(none.id, 8);
  assert.deepEqual(up.seen, [], "nothing asked upstream");
  assert.equal(p.proxy.stats.refused, 2);
  const rcodes = p.events.filter((e) => e.type === "dns").map((e) => e.dns?.rcode);
  assert.deepEqual(rcodes, ["FORMERR", "FORMERR"]);
  const blocked = p.events.find((e) => e.type === "blocked");
  assert.deepEqual(
    blocked?.layer7,
    { dns: { name: "x.ads.example" } },
    "the blocked name reported",
  );
  // one question still goes upstream
  const one = await ask(port, query(["api.example.org"], 9));
  assert.equal(one.rcode, "NOERROR");
  assert.deepEqual(up.seen, [["api.example.org"]]);
});

/** Connects to the proxy's TCP port; resolves once connected. */
function tcpClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.on("error", reject);
  });
}

const closed = (s: Socket): Promise<void> =>
  new Promise((resolve) => (s.destroyed ? resolve() : s.once("close", () => resolve())));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("TCP: past the cap on connections, the oldest idle one is closed", async (t) => {
  const p = await start(null, { tcp: { maxClients: 2 } });
  const port = p.proxy.addresses().tcp.port;
  const clients: Socket[] = [];
  t.after(() => {
    for (const c of clients) c.destroy();
    p.proxy.close();
  });
  for (let i = 0; i < 3; i++) {
    clients.push(await tcpClient(port));
    clients[i]!.on("error", () => {});
    await sleep(50);
  }
  await Promise.race([closed(clients[0]!), sleep(2000)]);
  assert.equal(clients[0]!.destroyed, true, "the oldest is closed");
  assert.equal(clients[2]!.destroyed, false, "the newest is served");
});

test("TCP: a query that trickles in is cut off at its deadline, whatever bytes keep coming", async (t) => {
  const p = await start(null, { tcp: { queryDeadlineMs: 300 } });
  const c = await tcpClient(p.proxy.addresses().tcp.port);
  c.on("error", () => {});
  const trickle = setInterval(() => c.writable && c.write(Buffer.from([0])), 50);
  t.after(() => {
    clearInterval(trickle);
    c.destroy();
    p.proxy.close();
  });
  c.write(Buffer.from([0xff, 0xff])); // a 65,535-byte query, one byte at a time
  await Promise.race([closed(c), sleep(3000)]);
  assert.equal(c.destroyed, true, "closed at the deadline, not kept by the bytes");
});

test("TCP: a client that never reads its answers is not read either", async (t) => {
  const p = await start(null, { tcp: { maxUnsentBytes: 16 * 1024 } });
  const c = await tcpClient(p.proxy.addresses().tcp.port);
  c.on("error", () => {});
  c.pause(); // never reads
  t.after(() => {
    c.destroy();
    p.proxy.close();
  });
  // queries of the longest name: each REFUSED answer (moat does not know the client) repeats it
  const longest = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
  const one = query([longest]);
  const framed = Buffer.concat([Buffer.from([one.length >> 8, one.length & 0xff]), one]);
  const sent = 60_000;
  for (let i = 0; i < sent; i += 100) c.write(Buffer.concat(Array(100).fill(framed)));
  let last = -1;
  for (let i = 0; i < 40 && p.proxy.stats.queries !== last; i++) {
    last = p.proxy.stats.queries;
    await sleep(250);
  }
  assert.ok(
    p.proxy.stats.queries < sent / 2,
    `${p.proxy.stats.queries} of ${sent} queries answered for a client that reads nothing`,
  );
});

test("a query from another namespace is asked under an id of moat's, and answered under the client's", async (t) => {
  const up = await upstream("127.0.0.1");
  const p = await start({ ip: up.ip, port: up.port }, { netnsSocket });
  t.after(() => {
    p.proxy.close();
    up.close();
  });
  const ports = await p.proxy.serveNetns("container", "/proc/self/ns/net");
  const clientIds = [0x1111, 0x2222, 0x3333];
  for (const id of clientIds) {
    const answer = await ask(ports.udp, query(["api.example.org"], id));
    assert.equal(answer.id, id, "the answer carries the client's id");
    assert.equal(answer.answers?.length, 1);
  }
  // the client knows its own ids: were they asked, it could answer for the server
  assert.notDeepEqual(up.ids, clientIds, "asked under other ids");
});

test("a query's event names only the names its addresses were bound to", async (t) => {
  // the server aliases the query to api.example.org but owns the address itself
  const s = createSocket("udp4");
  s.on("message", (msg, r) => {
    const q = dnsPacket.decode(msg);
    const name = q.questions?.[0]?.name ?? "";
    const answers: dnsPacket.Answer[] = [
      { type: "CNAME", name, ttl: 300, data: "api.example.org" },
      { type: "A", name, ttl: 300, data: "192.0.2.66" },
    ];
    s.send(
      dnsPacket.encode({ id: q.id, type: "response", questions: q.questions, answers }),
      r.port,
      r.address,
    );
  });
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const p = await start({ ip: "127.0.0.1", port: s.address().port });
  t.after(() => {
    p.proxy.close();
    s.close();
  });
  const answer = await ask(p.proxy.addresses().udp.port, query(["alias.example"]));
  assert.equal(answer.answers?.length, 2, "the answer is passed on whole");
  assert.deepEqual(
    p.bound.map((b) => b.ip),
    ["192.0.2.66"],
  );
  assert.deepEqual(p.events[0]?.dns?.names, ["alias.example"], "not api.example.org");
});
