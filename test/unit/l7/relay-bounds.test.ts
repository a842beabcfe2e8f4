// moat's real relay against clients and servers that would end or exhaust it: a server's answer
// (or a client's request) with a Trailer header Node cannot send as framed, one connection
// pipelining requests to a server that never answers (and h2c streams), and a first read larger
// than the head the relay buffers. The relay keeps serving, and nothing is lost or reordered.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as http2Connect, type Settings } from "node:http2";
import { connect, createServer, type Socket } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import { readHead } from "../../../src/l7/read-head.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { listenOnLoopback } from "../../helpers/ports.ts";
import { relayClient } from "../../helpers/relay-client.ts";

const POLICY = parsePolicy(
  `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: allow, egress: allow }
rules:
  - { name: no-admin, direction: egress, action: block, log: true, layer7: { http: { path: ["/admin"] } } }
  - { name: web, direction: egress, action: allow, log: true, layer7: { http: {} } }
`,
  "p.yaml",
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server that reads requests and answers each with `answer` when `answerNext` is called. */
async function upstreamServer(answer: string) {
  const sockets = new Set<Socket>();
  let received = "";
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    s.on("data", (d: Buffer) => (received += d.toString("latin1")));
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    received: () => received,
    answerNext: () => sockets.forEach((s) => s.write(Buffer.from(answer, "latin1"))),
    close: () => {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

const responses = (text: string) => [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => m[1]);

// --- a Trailer header Node cannot send as framed -------------------------------------------

for (const [what, answer, request] of [
  [
    "Content-Length",
    "HTTP/1.1 200 OK\r\nTrailer: x-checksum\r\nContent-Length: 2\r\n\r\nok",
    "GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
  ],
  [
    "a 204",
    "HTTP/1.1 204 No Content\r\nTrailer: x-checksum\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
  ],
  [
    "chunked, to an HTTP/1.0 client",
    "HTTP/1.1 200 OK\r\nTrailer: x-checksum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-checksum: 1\r\n\r\n",
    "GET /a HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
  ],
] as const) {
  test(`a server's answer with a Trailer header and ${what} reaches the client without it; the relay serves the next request`, async (t) => {
    const server = createServer((s) => {
      s.on("error", () => {});
      s.on("data", () => s.write(Buffer.from(answer, "latin1")));
    });
    const port = await listenOnLoopback(server);
    t.after(() => server.close());
    const { relay, events } = await openRealRelay({ port, policy: POLICY });
    t.after(() => relay.close());
    const c = relayClient(relay);
    c.socket.write(request);
    const text = await c.until(/\r\n\r\n/);
    assert.match(text, /^HTTP\/1\.[01] (200|204) /);
    assert.doesNotMatch(text, /trailer/i);
    c.socket.destroy();
    // the same relay answers the next client
    const next = relayClient(relay);
    next.socket.write("GET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.match(await next.until(/\r\n\r\n/), /^HTTP\/1\.1 403 /);
    next.socket.destroy();
    assert.deepEqual(
      events.map((e) => [e.rule, e.layer7?.http?.status]),
      [
        ["web", Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1])],
        ["no-admin", 403],
      ],
    );
  });
}

test("a client's request with a Trailer header and no chunked body goes upstream without it; nothing throws", async (t) => {
  let received = "";
  const server = createServer((s) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      received += d.toString("latin1");
      if (/\r\n\r\n(hi)?$/.test(received))
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
  });
  const port = await listenOnLoopback(server);
  t.after(() => server.close());
  const { relay } = await openRealRelay({ port, policy: POLICY });
  t.after(() => relay.close());
  for (const request of [
    "GET /a HTTP/1.1\r\nHost: a\r\nTrailer: x-t\r\n\r\n",
    "POST /b HTTP/1.1\r\nHost: a\r\nTrailer: x-t\r\nContent-Length: 2\r\n\r\nhi",
  ]) {
    received = "";
    const c = relayClient(relay);
    c.socket.write(request);
    assert.match(await c.until(/\r\n\r\nok/), /^HTTP\/1\.1 200 /);
    assert.match(received, /^(GET \/a|POST \/b) /);
    assert.doesNotMatch(received, /trailer/i);
    c.socket.destroy();
  }
});

// --- pipelined requests to a server that does not answer -----------------------------------

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`;

test("requests pipelined behind one not answered yet wait unjudged; then all are answered in order", async (t) => {
  const up = await upstreamServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  t.after(() => up.close());
  const { relay, events } = await openRealRelay({ port: up.port, policy: POLICY });
  t.after(() => relay.close());
  const c = relayClient(relay);
  t.after(() => c.socket.destroy());
  // one write: the relay reads them all at once
  c.socket.write(GET("/first") + GET("/admin").repeat(5));
  for (let i = 0; i < 500 && !up.received().includes("\r\n\r\n"); i++) await sleep(10);
  assert.deepEqual(
    events.map((e) => e.rule),
    [],
    "no request after the first is judged before the first is answered",
  );
  assert.equal(up.received().match(/ HTTP\/1\.1\r\n/g)?.length, 1, up.received());
  assert.match(up.received(), /^GET \/first /);
  up.answerNext();
  await c.until(/(HTTP\/1\.1 403[^]*){5}/);
  assert.deepEqual(responses(c.text()), ["200", "403", "403", "403", "403", "403"]);
  assert.deepEqual(
    events.map((e) => e.rule),
    ["web", "no-admin", "no-admin", "no-admin", "no-admin", "no-admin"],
  );
});

test("a connection pipelining more than 16 requests ahead of the answers is closed; none of them is judged", async (t) => {
  const up = await upstreamServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  t.after(() => up.close());
  const { relay, events, logs } = await openRealRelay({ port: up.port, policy: POLICY });
  t.after(() => relay.close());
  const c = relayClient(relay);
  t.after(() => c.socket.destroy());
  c.socket.write(GET("/first") + GET("/admin").repeat(40));
  // the relay either closes the connection or (before it bounded this) judges all 40 at once
  const pipelined = () => events.filter((e) => e.rule === "no-admin");
  for (let i = 0; i < 500 && !c.socket.destroyed && pipelined().length === 0; i++) await sleep(10);
  assert.equal(pipelined().length, 0, "no pipelined request is judged");
  await c.closed;
  assert.deepEqual(responses(c.text()), []);
  assert.ok(
    logs.some((l) => /more than 16 requests pipelined/.test(l)),
    logs.join("\n"),
  );
});

test("a request body still arriving while the next request is pipelined is read whole", async (t) => {
  const up = await upstreamServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  t.after(() => up.close());
  const { relay } = await openRealRelay({ port: up.port, policy: POLICY });
  t.after(() => relay.close());
  const c = relayClient(relay);
  t.after(() => c.socket.destroy());
  const body = Buffer.alloc(200_000, "b").toString();
  c.socket.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`);
  c.socket.write(body.slice(0, 100_000));
  await sleep(50);
  c.socket.write(body.slice(100_000) + GET("/after"));
  for (let i = 0; i < 500 && !up.received().endsWith(body); i++) await sleep(10);
  assert.ok(up.received().endsWith(body), "the server got the whole body");
  up.answerNext();
  for (let i = 0; i < 500 && !up.received().includes("GET /after"); i++) await sleep(10);
  up.answerNext();
  await c.until(/(HTTP\/1\.1 200[^]*){2}/);
  assert.deepEqual(responses(c.text()), ["200", "200"]);
});

test("an h2c client may have at most 100 streams open at once: the relay's SETTINGS say so", async (t) => {
  const up = await upstreamServer("");
  t.after(() => up.close());
  const { relay } = await openRealRelay({ port: up.port, policy: POLICY });
  t.after(() => relay.close());
  const session = http2Connect(`http://127.0.0.1:${relay.addressFor(4)!.port}`);
  t.after(() => session.destroy());
  session.on("error", () => {});
  const [settings] = (await once(session, "remoteSettings")) as [Settings];
  assert.equal(settings.maxConcurrentStreams, 100);
});

// --- a first read larger than the head ------------------------------------------------------

test("readHead on a socket whose first read is 40,000 bytes: the head, then the rest, in order, none lost", async (t) => {
  const sent = Buffer.concat([
    Buffer.alloc(16_000, "A"),
    Buffer.alloc(16_000, "B"),
    Buffer.alloc(8_000, "C"),
  ]);
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer({ pauseOnConnect: true }, resolve);
    t.after(() => server.close());
    void listenOnLoopback(server).then((port) => {
      const c = connect(port, "127.0.0.1");
      t.after(() => c.destroy());
      c.on("connect", () => c.write(sent, () => ready()));
    });
  });
  let ready!: () => void;
  const written = new Promise<void>((r) => (ready = r));
  const socket = await accepted;
  await written; // the whole write is in the relay's socket before the first read
  const read = await readHead(socket, Buffer.alloc(0), () => false, 5000, 16 * 1024);
  assert.equal(read.end, "full");
  const rest: Buffer[] = [];
  socket.on("data", (d: Buffer) => rest.push(d));
  socket.resume();
  const got = () => read.head.length + Buffer.concat(rest).length;
  for (let i = 0; i < 200 && got() < sent.length; i++) await sleep(10);
  assert.equal(read.head.length, 16 * 1024);
  assert.ok(Buffer.concat([read.head, ...rest]).equals(sent), "the bytes as sent");
});
