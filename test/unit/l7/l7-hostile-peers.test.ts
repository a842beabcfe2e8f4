// moat's real relay against peers that try to get bytes past its judgement or end the daemon: a
// TLS client whose second ClientHello (after a HelloRetryRequest) names another server, a CONNECT
// the server refuses while keeping the connection, and a tunnel whose splice fails. No promise of
// the relay may reach 'unhandledRejection'.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { connect as tlsConnect, createServer as tlsCreateServer } from "node:tls";
import { readFileSync } from "node:fs";
import { parsePolicy } from "../../../src/config/index.ts";
import { copyBothWays } from "../../../src/l7/relay.ts";
import { HandshakeReader } from "../../../src/l7/tls/handshake-reader.ts";
import { parseClientHello } from "../../../src/l7/tls/hello.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { HTTP_POLICY } from "../../helpers/l7-http-policy.ts";
import { captureHello, nodeClient } from "../../helpers/tls-capture.ts";
import { makeCertificates, type TestCertificates } from "../../helpers/test-certificates.ts";
import { listenOnLoopback } from "../../helpers/ports.ts";

const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);
let certs: TestCertificates;
before(() => {
  process.on("unhandledRejection", onRejection);
  certs = makeCertificates([{ name: "good", cn: "good.example" }]);
});
after(() => {
  process.off("unhandledRejection", onRejection);
  certs.remove();
});

const TLS_POLICY = parsePolicy(
  `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: good, direction: egress, action: allow, log: true, layer7: { tls: { sni: [good.example], trust_sni: true } } }
  - { name: other-tls, direction: egress, action: block, layer7: { tls: {} } }
`,
  "tls.yaml",
);
const HTTP = parsePolicy(HTTP_POLICY, "http.yaml");

// (not events.once: it rejects on the reset that a cut client sees)
const closed = (s: Socket) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once("close", () => resolve())));

/** Everything a socket sends until it closes (or `ms` pass: then it is destroyed). */
function readAll(s: Socket, ms = 5000): Promise<string> {
  let data = "";
  s.on("data", (c: Buffer) => (data += c.toString("latin1")));
  s.on("error", () => {});
  const timer = setTimeout(() => s.destroy(), ms);
  return closed(s).then(() => {
    clearTimeout(timer);
    return data;
  });
}

/** RFC 8446 4.1.3: the random of a HelloRetryRequest. */
const HRR_RANDOM = Buffer.from(
  "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c",
  "hex",
);

/** A HelloRetryRequest record: TLS 1.3, TLS_AES_128_GCM_SHA256, asking for a P-256 key share. */
function helloRetryRequest(): Buffer {
  const extensions = Buffer.from([0, 43, 0, 2, 3, 4, 0, 51, 0, 2, 0, 0x17]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    HRR_RANDOM,
    Buffer.from([0, 0x13, 0x01, 0, 0, extensions.length]),
    extensions,
  ]);
  const message = Buffer.concat([Buffer.from([2, 0, 0, body.length]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 3, 0, message.length]), message]);
}

test("a second ClientHello naming another server after a HelloRetryRequest is cut", async () => {
  const good = (await captureHello(nodeClient({ servername: "good.example" }))).bytes;
  const evil = (await captureHello(nodeClient({ servername: "evil.example" }))).bytes;
  // a server that asks every client to retry, and records the names of the hellos it reads
  const names: (string | undefined)[] = [];
  const server = createServer((s) => {
    s.on("error", () => {});
    const reader = new HandshakeReader();
    s.on("data", (c: Buffer) => {
      reader.push(c);
      for (let read = reader.next(); read.kind === "message"; read = reader.next()) {
        names.push(parseClientHello(read.body).sni);
        if (names.length === 1) s.write(helloRetryRequest());
      }
    });
  });
  const { relay, events } = await openRealRelay({
    port: await listenOnLoopback(server),
    policy: TLS_POLICY,
  });
  try {
    const client = connect((relay.addressFor(4) ?? { port: 0 }).port, "127.0.0.1");
    client.on("error", () => {});
    client.write(good);
    await once(client, "data");
    client.write(evil);
    await readAll(client);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(names, ["good.example"]);
    const last = events.at(-1);
    assert.equal(last?.verdict, "blocked");
    assert.equal(last?.layer7?.tls?.sni, "evil.example");
  } finally {
    relay.close();
    server.close();
  }
});

test("a real client's retry (same server name, another key share) completes through the relay", async () => {
  const { cert, key } = certs.leaf("good");
  // the server takes only P-384: Node's client offers its key share for X25519 first, so retries
  const server = tlsCreateServer({
    cert: readFileSync(cert),
    key: readFileSync(key),
    ecdhCurve: "P-384",
    minVersion: "TLSv1.3",
  });
  server.on("secureConnection", (s) => s.end("hello from the server"));
  server.on("tlsClientError", () => {});
  const { relay, events } = await openRealRelay({
    port: await listenOnLoopback(server),
    policy: TLS_POLICY,
  });
  try {
    const client = tlsConnect({
      host: "127.0.0.1",
      port: (relay.addressFor(4) ?? { port: 0 }).port,
      servername: "good.example",
      rejectUnauthorized: false,
    });
    // the group the handshake ended on: P-384 only after a retry
    let curve = "";
    client.on("secureConnect", () => {
      const info = client.getEphemeralKeyInfo();
      curve = info && "name" in info ? String(info.name) : "";
    });
    const answer = await readAll(client as unknown as Socket);
    assert.match(curve, /384/);
    assert.equal(answer, "hello from the server");
    assert.equal(events.at(-1)?.verdict, "allowed");
  } finally {
    relay.close();
    server.close();
  }
});

test("CONNECT the server refuses (407, kept alive): no tunnel, nothing after it reaches the server", async () => {
  let seen = "";
  const server = createServer((s) => {
    s.on("error", () => {});
    s.on("data", (c: Buffer) => {
      const first = seen === "";
      seen += c.toString("latin1");
      if (first)
        s.write(
          "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n" +
            "Content-Length: 5\r\n\r\nlogin",
        );
    });
  });
  const { relay } = await openRealRelay({ port: await listenOnLoopback(server), policy: HTTP });
  try {
    const client = connect((relay.addressFor(4) ?? { port: 0 }).port, "127.0.0.1");
    client.on("error", () => {});
    const all = readAll(client);
    client.write("CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n");
    await new Promise((r) => setTimeout(r, 200));
    if (!client.destroyed) client.write("DELETE /admin HTTP/1.1\r\nHost: x.evil.example\r\n\r\n");
    await new Promise((r) => setTimeout(r, 200));
    client.destroy();
    const answer = await all;
    assert.match(answer, /^HTTP\/1\.1 407 /);
    assert.match(answer, /login$/);
    assert.doesNotMatch(seen, /DELETE/);
  } finally {
    relay.close();
    server.close();
  }
});

test("a tunnel whose splice fails (the client already gone) ends the connection, not the daemon", async () => {
  const server = createServer((s) => {
    s.on("error", () => {});
    s.once("data", () => setTimeout(() => s.write("HTTP/1.1 200 OK\r\n\r\n"), 150));
  });
  const port = await listenOnLoopback(server);
  const { relay, logs } = await openRealRelay({
    port,
    policy: HTTP,
    // as the kernel splice does: a socket that is no longer connected is refused
    splice: async (c, u, o) => {
      if (!c.localAddress || !u.localAddress)
        throw new Error("splice: the socket is not connected");
      return copyBothWays(c, u, o);
    },
  });
  try {
    const client = connect((relay.addressFor(4) ?? { port: 0 }).port, "127.0.0.1");
    client.on("error", () => {});
    await once(client, "connect");
    client.write("CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n");
    await new Promise((r) => setTimeout(r, 50));
    const seen = rejections.length;
    client.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(rejections.slice(seen), []);
    assert.ok(
      logs.some((l) => /splice/.test(l)),
      logs.join("\n"),
    );
  } finally {
    relay.close();
    server.close();
  }
});
