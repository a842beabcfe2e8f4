// Trusted answers a hostile zone can make a resolver give (the proxy on loopback, its server a
// trusted loopback one answering as such a zone would):
// - every new name answered with the same address: an address keeps a bounded number of names
//   per identity, its newest among them, and the work of binding a name does not grow with the
//   names it had before;
// - every name answered with addresses never seen before: the names one user's lookups keep
//   bound are bounded (its answers then go as failure.helper says), and root's still bind;
// - a name whose octets are not UTF-8: moat's own answers (REFUSED for a blocked name, the
//   truncated answer that sends a client to TCP) echo its question octet for octet, as a stub
//   needs to take them as the answer to its query;
// - a TCP client that shuts its sending side once its queries are sent still gets the answers;
// - a CNAME chain longer than moat follows, to a name a rule blocks: the client does not get it;
// - a TCP server that sends its answer a byte at a time: moat copies what it received a bounded
//   number of times, not once per segment.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import dnsPacket from "dns-packet";
import type { DnsOwner } from "../../src/dns/index.ts";
import {
  aQuery,
  askUdp,
  CURL,
  openLoopbackProxy,
  proxyToServer,
  udpUpstream,
  askUdpRaw,
} from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - { name: dns, direction: egress, action: allow, layer4: { port: [53] } }
  - { name: zone, direction: egress, action: allow, layer3: { remote: ["**.zone.example"] } }
`;

const CURL_IDENTITY = { cgroupId: CURL.cgroupId, exeIno: 1234n, exeDev: 1, uid: CURL.uid };

/** A zone's answer to `q`: an A record of the question's name for each of `ips`, TTL a day. */
function zoneAnswer(q: Buffer, ips: readonly string[]): Buffer {
  const d = dnsPacket.decode(q);
  const name = d.questions?.[0]?.name ?? "";
  const answers = ips.map((ip) => ({ type: "A" as const, name, ttl: 86_400, data: ip }));
  return dnsPacket.encode({ id: d.id, type: "response", questions: d.questions, answers });
}

test("one address answered for thousands of names keeps a bounded set of them, the newest in it", async (t) => {
  const { p, port } = await proxyToServer(t, POLICY, (q) => zoneAnswer(q, ["192.0.2.9"]));
  // the names each binding's class is worked out from: the work of one answer
  let classed = 0;
  p.proxy.setClasses((names) => {
    classed += names.length;
    return 1;
  });
  const asked = 400;
  for (let i = 0; i < asked; i++) {
    const answer = await askUdp(port, aQuery(`n${i}.zone.example`, i + 1), { timeoutMs: 3000 });
    assert.equal(answer.rcode, "NOERROR");
  }
  assert.ok(
    classed <= asked * 64,
    `${classed} names classed for ${asked} answers: each answer's work grows with the names before it`,
  );
  const names = p.proxy.namesOf(CURL_IDENTITY, "192.0.2.9");
  assert.ok(names.length <= 64, `the address keeps ${names.length} names`);
  assert.ok(names.includes(`n${asked - 1}.zone.example`), "the newest name is bound");
});

test("an address /etc/hosts gives thousands of names costs each answer binding it no more", async (t) => {
  // a resolver answering blocked names with 192.0.2.9, which a blocklist hosts file also names
  const { p, port } = await proxyToServer(t, POLICY, (q) => zoneAnswer(q, ["192.0.2.9"]));
  let classed = 0;
  p.proxy.setClasses((names) => {
    classed += names.length;
    return names.some((n) => n.endsWith(".zone.example")) ? 1 : 0;
  });
  const listed = 5000;
  const hosts = new Map<string, string[]>();
  for (let i = 0; i < listed; i++) hosts.set(`ad${i}.tracker.example`, ["192.0.2.9"]);
  p.proxy.setShared(hosts);
  classed = 0;
  const asked = 100;
  for (let i = 0; i < asked; i++) {
    const answer = await askUdp(port, aQuery(`n${i}.zone.example`, i + 1), { timeoutMs: 3000 });
    assert.equal(answer.rcode, "NOERROR");
  }
  assert.ok(
    classed <= listed + asked * 64,
    `${classed} names classed for ${asked} answers: each classes every name of the hosts file`,
  );
  assert.equal(p.bound.at(-1)?.nclass, 1, "the binding's class is still the names' own");
});

const ROOT: DnsOwner = { pid: 1, uid: 0, cgroupId: 7n, comm: "dig", exeIno: 1n, exeDev: 1 };
/** Clients on 127.0.0.2 are user 1000 (curl); the others root. */
const USER_IP = "127.0.0.2";

test("one user's answers of addresses never seen before bind a bounded number of names; root's still bind", async (t) => {
  // 30 new addresses per answer: a wildcard zone that never repeats one
  let next = 0;
  const fresh = () =>
    Array.from({ length: 30 }, () => {
      next++;
      return `10.${next >> 16}.${(next >> 8) & 255}.${next & 255}`;
    });
  const up = await udpUpstream("127.0.0.1", (q) => zoneAnswer(q, fresh()));
  const logs: string[] = [];
  const p = await openLoopbackProxy({
    policy: POLICY,
    original: (peer) => ({
      original: { ip: up.ip, port: up.port },
      owner: peer.ip === USER_IP ? CURL : ROOT,
    }),
    path: "/usr/bin/curl",
    judged: (facts) => ({ ...facts, remote: { ...facts.remote, port: 53 } }),
    // the store's bound, small for the test: a user holds a quarter of it
    more: { maxNames: 400, log: (line) => logs.push(line) },
  });
  t.after(() => {
    p.proxy.close();
    up.close();
  });
  const port = p.proxy.addresses().udp.port;
  const rcodes: string[] = [];
  for (let i = 0; i < 6; i++) {
    const a = await askUdp(port, aQuery(`u${i}.zone.example`, i + 1), {
      timeoutMs: 3000,
      from: USER_IP,
    });
    rcodes.push(a.rcode ?? "");
  }
  // 3 answers (90 names) fit the user's 100; failure.helper (block) answers the rest SERVFAIL
  assert.deepEqual(rcodes, ["NOERROR", "NOERROR", "NOERROR", "SERVFAIL", "SERVFAIL", "SERVFAIL"]);
  assert.equal(p.proxy.store.size, 90, "the user's names stay within its share");
  assert.ok(logs.some((l) => /names of uid 1000 .* not bound \(failure\.helper: block\)/.test(l)));
  const root = await askUdp(port, aQuery("root.zone.example", 99), { timeoutMs: 3000 });
  assert.equal(root.rcode, "NOERROR");
  assert.equal(p.proxy.store.size, 120, "root's answer binds");
});

/** A query of one A question whose first label is the octets 0xff 0x78 (not UTF-8). */
function notUtf8Query(zone: string, id: number): Buffer {
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const labels = [Buffer.from([2, 0xff, 0x78])];
  for (const l of zone.split(".")) labels.push(Buffer.from([l.length]), Buffer.from(l));
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/**
 * A server's answer to `q` as servers write it: the question's octets echoed, then `count` A
 * records whose names point at it.
 */
function echoingAnswer(q: Buffer, count: number): Buffer {
  const header = Buffer.from(q.subarray(0, 12));
  header[2] = 0x81; // QR, RD
  header[3] = 0x80; // RA
  header.writeUInt16BE(count, 6);
  const records = Array.from({ length: count }, (_, i) =>
    Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, i + 1]),
  );
  return Buffer.concat([header, q.subarray(12), ...records]);
}

test("moat's own answers to a name that is not UTF-8 echo its question octet for octet", async (t) => {
  const blocking = POLICY.replace(
    "rules:\n",
    "rules:\n  - { name: no-ads, direction: egress, action: block, layer7: { dns: { name: ['**.ads.example'] } } }\n",
  );
  const { p, port } = await proxyToServer(t, blocking, (q) => echoingAnswer(q, 60));
  const question = (m: Buffer, asked: Buffer) => m.subarray(12, asked.length);

  const blocked = notUtf8Query("ads.example", 0x4242);
  const refused = await askUdpRaw(port, blocked, { timeoutMs: 3000 });
  assert.equal(refused[3]! & 0x0f, 5, "REFUSED");
  assert.deepEqual(question(refused, blocked), blocked.subarray(12), "the question as asked");

  // 60 addresses: more than a client without EDNS takes over UDP, sent truncated
  const big = notUtf8Query("zone.example", 0x4343);
  const tc = await askUdpRaw(port, big, { timeoutMs: 3000 });
  assert.equal(tc[2]! & 0x02, 0x02, "TC set");
  assert.deepEqual(question(tc, big), big.subarray(12), "the question as asked");
  assert.equal(p.events.filter((e) => e.type === "dns").length, 2);
});

/** A DNS message with TCP's 2-byte length before it. */
const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

test("a TCP client that shuts its sending side after its queries still gets their answers", async (t) => {
  // a TCP server answering a little later, after the client's FIN reached moat
  const server = createServer((c) => {
    c.on("error", () => {});
    c.on("data", (chunk) => {
      const q = chunk.subarray(2, 2 + chunk.readUInt16BE(0));
      setTimeout(() => c.writable && c.write(framed(zoneAnswer(q, ["192.0.2.9"]))), 100);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const at = { ip: "127.0.0.1", port: (server.address() as { port: number }).port };
  const blocking = POLICY.replace(
    "rules:\n",
    "rules:\n  - { name: no-ads, direction: egress, action: block, layer7: { dns: { name: ['**.ads.example'] } } }\n",
  );
  const p = await openLoopbackProxy({
    policy: blocking,
    original: () => ({ original: at, owner: CURL }),
    path: "/usr/bin/curl",
    judged: (facts) => ({ ...facts, remote: { ...facts.remote, port: 53 } }),
  });
  t.after(() => {
    p.proxy.close();
    server.close();
  });
  // one query the server answers, one moat refuses itself; then FIN
  const queries = [aQuery("a.zone.example", 1), aQuery("x.ads.example", 2)];
  const got = await new Promise<Buffer>((resolve, reject) => {
    const c = connect({ host: "127.0.0.1", port: p.proxy.addresses().tcp.port }, () =>
      c.end(Buffer.concat(queries.map(framed))),
    );
    const chunks: Buffer[] = [];
    c.on("data", (d) => chunks.push(d));
    c.on("close", () => resolve(Buffer.concat(chunks)));
    c.on("error", reject);
  });
  const answers: { id?: number; rcode?: string }[] = [];
  for (let at = 0; at + 2 <= got.length; at += 2 + got.readUInt16BE(at))
    answers.push(dnsPacket.decode(got.subarray(at + 2, at + 2 + got.readUInt16BE(at))));
  assert.deepEqual(answers.map((a) => [a.id, a.rcode]).sort(), [
    [1, "NOERROR"],
    [2, "REFUSED"],
  ]);
});

test("a CNAME chain past the 16 names moat judges, to a blocked name, does not reach the client", async (t) => {
  const blocking = POLICY.replace(
    "rules:\n",
    "rules:\n  - { name: no-ads, direction: egress, action: block, layer7: { dns: { name: ['**.ads.example'] } } }\n",
  );
  // n0.zone.example -> ... -> n16.zone.example -> t.ads.example (the 18th name), as a resolver
  // that follows 17 CNAMEs returns it
  const chain = [...Array.from({ length: 17 }, (_, i) => `n${i}.zone.example`), "t.ads.example"];
  const { p, port } = await proxyToServer(t, blocking, (q) => {
    const d = dnsPacket.decode(q);
    const answers: dnsPacket.Answer[] = chain
      .slice(1)
      .map((to, i) => ({ type: "CNAME", name: chain[i]!, ttl: 60, data: to }));
    answers.push({ type: "A", name: "t.ads.example", ttl: 60, data: "192.0.2.66" });
    return dnsPacket.encode({ id: d.id, type: "response", questions: d.questions, answers });
  });
  const answer = await askUdp(port, aQuery("n0.zone.example", 5), { timeoutMs: 3000 });
  assert.notEqual(answer.rcode, "NOERROR", "the blocked name's address reached the client");
  assert.equal(answer.answers?.length, 0);
  assert.deepEqual(p.bound, []);
});

test("a TCP server's answer sent a byte at a time is put together once, not per segment", async (t) => {
  // a 16 KB answer, each byte its own segment
  const txt = Array.from({ length: 60 }, (_, i) => ({
    type: "TXT" as const,
    name: "slow.zone.example",
    ttl: 60,
    data: `${i}`.padEnd(250, "x"),
  }));
  let size = 0;
  const server = createServer((c) => {
    c.setNoDelay(true);
    c.on("error", () => {});
    c.once("data", (chunk) => {
      const d = dnsPacket.decode(chunk.subarray(2));
      const all = framed(
        dnsPacket.encode({ id: d.id, type: "response", questions: d.questions, answers: txt }),
      );
      size = all.length;
      let at = 0;
      const step = () => {
        if (!c.writable) return;
        c.write(all.subarray(at, ++at));
        if (at < all.length) setImmediate(step);
      };
      step();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const at = { ip: "127.0.0.1", port: (server.address() as { port: number }).port };
  const p = await openLoopbackProxy({
    policy: POLICY,
    original: () => ({ original: at, owner: CURL }),
    path: "/usr/bin/curl",
    judged: (facts) => ({ ...facts, remote: { ...facts.remote, port: 53 } }),
    more: { timeoutMs: 60_000 },
  });
  // the bytes the process copies into joined buffers meanwhile (the proxy runs in it)
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = (list: readonly Uint8Array[], length?: number) => {
    for (const b of list) copied += b.length;
    return concat(list, length);
  };
  t.after(() => {
    Buffer.concat = concat;
    p.proxy.close();
    server.close();
  });
  const q = aQuery("slow.zone.example", 9);
  const got = await new Promise<Buffer>((resolve, reject) => {
    const c = connect({ host: "127.0.0.1", port: p.proxy.addresses().tcp.port }, () =>
      c.write(framed(q)),
    );
    const chunks: Buffer[] = [];
    c.on("data", (d) => {
      chunks.push(d);
      const all = concat(chunks);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
        c.destroy();
        resolve(all.subarray(2));
      }
    });
    c.on("error", reject);
  });
  Buffer.concat = concat;
  assert.equal(dnsPacket.decode(got).answers?.length, 60, "the whole answer");
  assert.ok(copied <= 8 * size, `${copied} bytes copied for an answer of ${size}`);
});
