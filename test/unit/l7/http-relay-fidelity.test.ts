// What a client and a server see through the HTTP/1.x handler compared with what they would see
// directly: an answer the server cuts short ends the client's connection at once, a request
// without Host reaches the server with one, header bytes of a tunnel's answer pass as they came,
// a large answer head passes, an answer Node cannot read is a 502 that says so, and an idle
// keep-alive connection is closed without an answer.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { startL7Relay, type L7Relay } from "../../helpers/l7-http-relay.ts";
import { listenOnLoopback } from "../../helpers/ports.ts";

const POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules:
  - name: no-admin
    direction: egress
    action: block
    layer7: { http: { path: ["/admin"] } }
`;

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

/**
 * A raw server: `answer` gets what a connection sent so far and returns bytes to write (or null
 * to wait for more); `close` ends the connection after writing. Everything received is kept.
 */
async function rawServer(
  answer: (received: string) => { bytes: string; close?: boolean } | null,
): Promise<{ port: number; received: () => string }> {
  let all = "";
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    let sofar = "";
    s.on("error", () => {});
    s.on("data", (c: Buffer) => {
      sofar += c.toString("latin1");
      all += c.toString("latin1");
      const out = answer(sofar);
      if (!out) return;
      sofar = "";
      s.write(Buffer.from(out.bytes, "latin1"));
      if (out.close) s.end();
    });
  });
  server.on("close", () => sockets.forEach((s) => s.destroy()));
  servers.push(server);
  return { port: await listenOnLoopback(server), received: () => all };
}

/** Answers each complete request head with `bytes`. */
const onHead =
  (bytes: string, close = false) =>
  (sofar: string) =>
    sofar.includes("\r\n\r\n") ? { bytes, close } : null;

/**
 * Sends `request` and reads until the relay closes the connection; `byRelay` is false when the
 * test had to give up waiting (after `ms`) and destroyed it itself.
 */
function exchange(
  relay: L7Relay,
  request: string,
  ms = 4000,
  /** More to send once the answer so far ends with `after`. */
  more?: { after: string; send: string },
): Promise<{ text: string; byRelay: boolean }> {
  return new Promise((resolve) => {
    const s = connect(relay.port, "127.0.0.1");
    let text = "";
    let byRelay = true;
    const timer = setTimeout(() => {
      byRelay = false;
      s.destroy();
    }, ms);
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (more && text.endsWith(more.after)) s.write(more.send);
    });
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ text, byRelay });
    });
    s.on("connect", () => s.write(Buffer.from(request, "latin1")));
  });
}

const GET = "GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n";

for (const [what, answer, body] of [
  [
    "before its Content-Length is complete",
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "short",
  ],
  [
    "before the last chunk",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "hello",
  ],
] as const) {
  test(`an answer the server cuts ${what} ends the client's connection, the body short`, async () => {
    const up = await rawServer(onHead(answer, true));
    const relay = await startL7Relay(POLICY, up.port, httpHandler());
    try {
      const { text, byRelay } = await exchange(relay, GET);
      assert.ok(byRelay, `the relay kept the client's connection open after: ${text}`);
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.ok(text.includes(body), text);
      assert.doesNotMatch(text, /\r\n0\r\n\r\n$/, "no last chunk the server never sent");
    } finally {
      await relay.close();
    }
  });
}

test("an HTTP/1.0 request without Host reaches the server with the original destination as Host", async () => {
  const up = await rawServer(onHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  const relay = await startL7Relay(POLICY, up.port, httpHandler());
  try {
    const { text } = await exchange(relay, "GET /x HTTP/1.0\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(up.received(), new RegExp(`\\r\\nhost: 127\\.0\\.0\\.1:${up.port}\\r\\n`, "i"));
    assert.equal(relay.reports.at(-1)?.verdict, "allowed");
  } finally {
    await relay.close();
  }
});

const UTF8_HEADER = "X-U: caf\xc3\xa9\r\n";

for (const [what, request, answer] of [
  [
    "a CONNECT's 200",
    "CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n",
    `HTTP/1.1 200 OK\r\n${UTF8_HEADER}\r\n`,
  ],
  [
    "a CONNECT's refusal",
    "CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n",
    `HTTP/1.1 407 No\r\n${UTF8_HEADER}Content-Length: 3\r\n\r\nno!`,
  ],
  [
    "a websocket's 101",
    "GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${UTF8_HEADER}\r\n`,
  ],
  [
    "a refused upgrade",
    "GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    `HTTP/1.1 200 OK\r\n${UTF8_HEADER}Content-Length: 3\r\n\r\nno!`,
  ],
] as const) {
  test(`header bytes of ${what} reach the client as the server sent them`, async () => {
    const up = await rawServer(onHead(answer));
    const relay = await startL7Relay(POLICY, up.port, httpHandler());
    try {
      const { text } = await exchange(relay, request, 1000);
      assert.ok(text.toLowerCase().includes(UTF8_HEADER.toLowerCase()), JSON.stringify(text));
    } finally {
      await relay.close();
    }
  });
}

test("a refused upgrade keeps the server's Content-Length", async () => {
  const up = await rawServer(onHead("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nno!"));
  const relay = await startL7Relay(POLICY, up.port, httpHandler());
  try {
    const { text } = await exchange(
      relay,
      "GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert.match(text, /\r\ncontent-length: 3\r\n/i);
    assert.match(text, /\r\n\r\nno!$/);
  } finally {
    await relay.close();
  }
});

test("an answer head of 20 KiB passes", async () => {
  const big = "a".repeat(20_000);
  const up = await rawServer(
    onHead(`HTTP/1.1 200 OK\r\nX-Big: ${big}\r\nContent-Length: 2\r\n\r\nok`),
  );
  const relay = await startL7Relay(POLICY, up.port, httpHandler());
  try {
    const { text } = await exchange(relay, GET, 1000);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(text.includes(big));
  } finally {
    await relay.close();
  }
});

for (const [what, answer] of [
  [
    "a head over 64 KiB",
    `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\nContent-Length: 2\r\n\r\nok`,
  ],
  [
    "two identical Content-Lengths",
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
  ],
  [
    "Transfer-Encoding and Content-Length",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  ],
  ["no status line", "just bytes, no status line\n"],
] as const) {
  test(`an answer with ${what} gets the client a 502 saying it could not be read`, async () => {
    const up = await rawServer(onHead(answer));
    const relay = await startL7Relay(POLICY, up.port, httpHandler());
    try {
      const { text } = await exchange(relay, GET);
      assert.match(text, /^HTTP\/1\.1 502 /);
      assert.match(text, /moat: the server's answer could not be read: \S/);
      assert.ok(
        relay.logs.some((l) => /the server's answer could not be read: \S/.test(l)),
        relay.logs.join("\n"),
      );
      assert.equal(relay.reports.at(-1)?.layer7.http?.status, 502);
    } finally {
      await relay.close();
    }
  });
}

test("an idle keep-alive connection gets 408 at the header timeout, and no timeout is advertised", async () => {
  const up = await rawServer(onHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  // longer than Node's own keep-alive timer (5 s and its 1 s of grace)
  const relay = await startL7Relay(POLICY, up.port, httpHandler({ headersTimeoutMs: 8000 }));
  try {
    const { text, byRelay } = await exchange(relay, GET, 20_000);
    assert.ok(byRelay, "the relay closed the idle connection");
    const [first, ...rest] = text.split("\r\n\r\nok");
    assert.match(first ?? "", /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(first ?? "", /\r\nkeep-alive:/i);
    assert.match(rest.join(""), /^HTTP\/1\.1 408 /);
  } finally {
    await relay.close();
  }
});

const EXPECTING = (path: string) =>
  `POST ${path} HTTP/1.1\r\nHost: a.example\r\nExpect: x-other\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`;

test("an Expect other than 100-continue is judged and reaches the server with its request", async () => {
  const up = await rawServer((sofar) =>
    sofar.endsWith("\r\n\r\nhi")
      ? { bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }
      : null,
  );
  const relay = await startL7Relay(POLICY, up.port, httpHandler());
  try {
    const { text } = await exchange(relay, EXPECTING("/x"));
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(up.received(), /\r\nexpect: x-other\r\n/i);
    assert.equal(relay.reports.at(-1)?.verdict, "allowed");
    assert.equal(relay.reports.at(-1)?.layer7.http?.path, "/x");
  } finally {
    await relay.close();
  }
});

test("a blocked request with an Expect other than 100-continue gets moat's 403", async () => {
  const up = await rawServer(onHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  const relay = await startL7Relay(POLICY, up.port, httpHandler());
  try {
    const { text } = await exchange(relay, EXPECTING("/admin"));
    assert.match(text, /^HTTP\/1\.1 403 /);
    assert.equal(relay.reports.at(-1)?.verdict, "blocked");
    assert.equal(up.received(), "");
  } finally {
    await relay.close();
  }
});
