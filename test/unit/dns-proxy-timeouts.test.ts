// What happens to a DNS query its server does not answer, with the real proxy and its upstream
// sockets on loopback (the kernel's record of who asked is stood in for):
// - the proxy answers it SERVFAIL once its time is up, and the query gives its place among the
//   queries waiting back: a user whose whole share timed out has its next query asked, not
//   refused as over its share;
// - in the upstream pool, queries wait under their own timeouts, however they were asked: a
//   short one asked after a long one fails first, a query answered meanwhile is answered, and
//   closing the pool fails what still waits.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import type { DnsOwner } from "../../src/dns/index.ts";
import { UpstreamPool } from "../../src/dns/upstream-pool.ts";
import {
  aAnswer,
  aQuery,
  askUdp,
  decoded,
  openLoopbackProxy,
  udpUpstream,
} from "../helpers/loopback-dns-proxy.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules: []
`;

const USER: DnsOwner = { pid: 2, uid: 1000, cgroupId: 8n, comm: "flood", exeIno: 2n, exeDev: 1 };
/** The most queries one uid has waiting for their servers (src/dns/proxy.ts: a quarter of 4096). */
const SHARE = 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `done()` or 30 s. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 600 && !done(); i++) await sleep(50);
}

/** UDP sockets on 127.0.0.1 that count the answers they get, by rcode. */
async function clients(
  t: TestContext,
  n: number,
): Promise<{
  sockets: UdpSocket[];
  rcodes: Map<string, number>;
}> {
  const rcodes = new Map<string, number>();
  const sockets: UdpSocket[] = [];
  for (let i = 0; i < n; i++) {
    const s = createSocket("udp4");
    s.on("message", (m) => {
      const rcode = (decoded(m).rcode as string | undefined) ?? "?";
      rcodes.set(rcode, (rcodes.get(rcode) ?? 0) + 1);
    });
    await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
    sockets.push(s);
  }
  t.after(() => {
    for (const s of sockets) s.close();
  });
  return { sockets, rcodes };
}

test("a user's whole share of queries to a silent server is SERVFAIL at its timeout, and its next query is asked", async (t) => {
  const silent = await udpUpstream("127.0.0.1", null);
  t.after(() => silent.close());
  const p = await openLoopbackProxy({
    policy: POLICY,
    original: () => ({ original: { ip: silent.ip, port: silent.port }, owner: USER }),
    path: "/usr/bin/flood",
    more: { timeoutMs: 300 },
  });
  t.after(() => p.proxy.close());
  const port = p.proxy.addresses().udp.port;
  const c = await clients(t, 16);
  for (let i = 0; i < SHARE; i++) {
    c.sockets[i % c.sockets.length]!.send(aQuery(`q${i}.example`, i), port, "127.0.0.1");
    // paced: the proxy takes each before a socket's buffer would drop one
    if (i % 128 === 127) await until(() => p.proxy.stats.queries > i - 64);
  }
  await until(() => (c.rcodes.get("SERVFAIL") ?? 0) >= SHARE);
  assert.equal(c.rcodes.get("SERVFAIL"), SHARE, "every query of the share answered SERVFAIL");
  assert.equal(silent.ids.length, SHARE, "every one was asked");
  assert.equal(p.proxy.stats.overloaded, 0);

  // the share is free again: the next query is asked too, not refused at once
  c.sockets[0]!.send(aQuery("next.example", 4242), port, "127.0.0.1");
  await until(() => (c.rcodes.get("SERVFAIL") ?? 0) > SHARE);
  assert.equal(c.rcodes.get("SERVFAIL"), SHARE + 1);
  assert.equal(silent.ids.length, SHARE + 1, "the next query was asked");
  assert.equal(p.proxy.stats.overloaded, 0, "none refused as over the user's share");
  assert.equal(p.proxy.stats.failed, SHARE + 1);
});

test("pool: a short timeout asked after a long one fails first; an answer in between arrives", async (t) => {
  // answers every query but those whose body starts with "s" (silent)
  const server = createSocket("udp4");
  server.on("message", (msg, r) => {
    if (msg[2] !== 0x73) server.send(msg, r.port, r.address);
  });
  await new Promise<void>((resolve) => server.bind(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const to = { ip: "127.0.0.1", port: server.address().port };
  const ask = (id: number, body: string) => {
    const b = Buffer.alloc(2 + body.length);
    b.writeUInt16BE(id, 0);
    b.write(body, 2);
    return b;
  };
  const pool = new UpstreamPool();
  const outcome = (p: Promise<Buffer>) =>
    p.then(
      (b) => `answered ${b.readUInt16BE(0)} ${b.subarray(2).toString()}`,
      (err: Error) => `failed: ${err.message}`,
    );
  let longDone = false;
  const long = outcome(pool.ask(to, ask(1, "s-long"), 60_000)).finally(() => (longDone = true));
  const short = outcome(pool.ask(to, ask(2, "s-short"), 200));
  const answered = outcome(pool.ask(to, ask(3, "hello"), 60_000));
  assert.equal(await answered, "answered 3 hello");
  assert.equal(await short, "failed: no answer in 200 ms");
  assert.equal(longDone, false, "the long query still waits");
  pool.close();
  assert.equal(await long, "failed: moat is stopping");
});

test("a part of the daemon that throws something other than an Error while a query is answered: the client gets SERVFAIL, the proxy runs on", async (t) => {
  const up = await udpUpstream("127.0.0.1", aAnswer);
  t.after(() => up.close());
  const logs: string[] = [];
  let throws = true;
  const p = await openLoopbackProxy({
    policy: POLICY,
    original: () => ({ original: { ip: up.ip, port: up.port }, owner: USER }),
    path: "/usr/bin/flood",
    more: {
      report: () => {
        // what a broken part of the daemon may do
        if (throws) throw null;
      },
      log: (l: string) => logs.push(l),
    },
  });
  t.after(() => p.proxy.close());
  const port = p.proxy.addresses().udp.port;
  const first = await askUdp(port, aQuery("a.example", 1), { timeoutMs: 2000 });
  assert.equal(first.rcode, "SERVFAIL");
  assert.ok(
    logs.some((l) => /a query from .* failed: null/.test(l)),
    logs.join("\n"),
  );
  throws = false;
  const next = await askUdp(port, aQuery("a.example", 2), { timeoutMs: 2000 });
  assert.equal(next.rcode, "NOERROR");
});
