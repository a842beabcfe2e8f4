// The DNS proxy's reused upstream sockets (src/dns/upstream-pool.ts) against a real UDP server on
// loopback: every answer reaches the query that asked, with the client's own id back in it,
// whatever id went on the wire; concurrent queries are told apart; a datagram answering no
// query is dropped; a refusal (nothing listens) fails the query at once; sockets are replaced
// after their uses, so the source port changes; the sockets open stay bounded whatever the number
// of servers asked (a user may name any server), and idle ones are closed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { readdirSync } from "node:fs";
import { UpstreamPool } from "../../src/dns/upstream-pool.ts";

/** A server that answers each datagram with its bytes reversed after the 2-byte id, and records
 * the ids and source ports it saw; `forge` first sends a datagram with another id. */
async function server(
  forge = false,
): Promise<{ port: number; ids: number[]; ports: Set<number>; close(): void }> {
  const s: Socket = createSocket("udp4");
  const ids: number[] = [];
  const ports = new Set<number>();
  s.on("message", (msg, r) => {
    ids.push(msg.readUInt16BE(0));
    ports.add(r.port);
    const answer = Buffer.concat([msg.subarray(0, 2), Buffer.from(msg.subarray(2)).reverse()]);
    if (forge) {
      const forged = Buffer.from(answer);
      forged.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0);
      s.send(forged, r.port, r.address);
    }
    // answers out of order: the later query first
    setTimeout(() => s.send(answer, r.port, r.address), msg[2] === 0x61 ? 20 : 0);
  });
  await new Promise<void>((res) => s.bind(0, "127.0.0.1", () => res()));
  return { port: s.address().port, ids, ports, close: () => s.close() };
}

const query = (id: number, body: string) => {
  const b = Buffer.alloc(2 + body.length);
  b.writeUInt16BE(id, 0);
  b.write(body, 2);
  return b;
};

test("each answer reaches its query with the client's id; the wire ids are moat's", async () => {
  const srv = await server(true);
  const pool = new UpstreamPool();
  try {
    const to = { ip: "127.0.0.1", port: srv.port };
    // the same client id twice, at once: two different queries
    const [a, b] = await Promise.all([
      pool.ask(to, query(7, "abc"), 2000),
      pool.ask(to, query(7, "xyz"), 2000),
    ]);
    assert.deepEqual([a.readUInt16BE(0), a.subarray(2).toString()], [7, "cba"]);
    assert.deepEqual([b.readUInt16BE(0), b.subarray(2).toString()], [7, "zyx"]);
    assert.equal(srv.ids.length, 2);
    assert.notEqual(srv.ids[0], srv.ids[1]);
  } finally {
    pool.close();
    srv.close();
  }
});

test("a query to a port where nothing listens fails at once, not at its timeout", async () => {
  const srv = await server();
  const port = srv.port;
  srv.close();
  const pool = new UpstreamPool();
  try {
    // the refusal (ICMP port unreachable) ends it, not the 5 s timeout
    await assert.rejects(pool.ask({ ip: "127.0.0.1", port }, query(1, "q"), 5000), /ECONNREFUSED/);
  } finally {
    pool.close();
  }
});

test("sockets are reused, then replaced: the source ports change over many queries", async () => {
  const srv = await server();
  const pool = new UpstreamPool();
  try {
    const to = { ip: "127.0.0.1", port: srv.port };
    for (let i = 0; i < 300; i++) await pool.ask(to, query(i, "q"), 2000);
    for (let i = 0; i < 2300; i += 100)
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => pool.ask(to, query(i + j, "q"), 2000)),
      );
    // 2600 queries: a few sockets at once, each replaced after its uses
    assert.ok(srv.ports.size > 8, `ports: ${srv.ports.size}`);
    assert.ok(srv.ports.size < 100, `ports: ${srv.ports.size}`);
  } finally {
    pool.close();
    srv.close();
  }
});

/** The file descriptors this process holds (its sockets among them). */
const openFds = (): number => readdirSync("/proc/self/fd").length;

/** `n` servers on loopback (each its own port: a server of its own for the pool). */
async function servers(n: number, answer: boolean): Promise<{ ports: number[]; close(): void }> {
  const all: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = createSocket("udp4");
    if (answer) s.on("message", (msg, r) => s.send(msg, r.port, r.address));
    await new Promise<void>((res) => s.bind(0, "127.0.0.1", () => res()));
    all.push(s);
  }
  return { ports: all.map((s) => s.address().port), close: () => all.forEach((s) => s.close()) };
}

test("queries to 400 servers that answer leave at most 64 servers' sockets open", async () => {
  const srv = await servers(400, true);
  const pool = new UpstreamPool();
  const before = openFds();
  try {
    for (const port of srv.ports) {
      const a = await pool.ask({ ip: "127.0.0.1", port }, query(3, "q"), 2000);
      assert.equal(a.subarray(2).toString(), "q", "every server's answer arrives");
    }
    const open = openFds() - before;
    assert.ok(open <= 64, `${open} sockets open after 400 servers`);
  } finally {
    pool.close();
    srv.close();
  }
});

test("queries to 400 silent servers at once: their sockets close when they time out", async () => {
  const srv = await servers(400, false);
  const pool = new UpstreamPool();
  const before = openFds();
  try {
    const asked = srv.ports.map((port) => pool.ask({ ip: "127.0.0.1", port }, query(3, "q"), 300));
    const outcomes = await Promise.allSettled(asked);
    assert.ok(outcomes.every((o) => o.status === "rejected"));
    const open = openFds() - before;
    assert.ok(open <= 64, `${open} sockets open after 400 silent servers`);
  } finally {
    pool.close();
    srv.close();
  }
});

test("a server's sockets are closed once idle", async () => {
  const srv = await servers(3, true);
  const pool = new UpstreamPool({ idleMs: 200 });
  const before = openFds();
  try {
    for (const port of srv.ports)
      for (let i = 0; i < 20; i++) await pool.ask({ ip: "127.0.0.1", port }, query(i, "q"), 2000);
    assert.ok(openFds() > before, "sockets kept while in use");
    for (let i = 0; i < 50 && openFds() > before; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(openFds() - before, 0, "every idle socket closed");
  } finally {
    pool.close();
    srv.close();
  }
});
