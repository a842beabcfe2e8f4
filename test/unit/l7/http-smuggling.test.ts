// Bytes a smuggler or a slow client sends, written raw over a TCP socket to the HTTP handler:
// what Node's parser refuses never reaches the server (400/431), a request hidden in a body stays
// a body, pipelined requests are each judged, and a head that never completes ends with 408.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { startL7Relay, type L7Relay } from "../../helpers/l7-http-relay.ts";
import { startHttpEcho, type Upstream } from "../../helpers/http-echo.ts";
import { HTTP_POLICY } from "../../helpers/l7-http-policy.ts";

let upstream: Upstream;
let relay: L7Relay;
before(async () => {
  upstream = await startHttpEcho();
  relay = await startL7Relay(HTTP_POLICY, upstream.port, httpHandler({ headersTimeoutMs: 300 }));
});
after(async () => {
  await relay.close();
  await upstream.close();
});

/**
 * Writes the chunks (a pause between each) and returns all the relay answered until it closed,
 * and how many chunks had been written by then.
 */
function raw(chunks: string[], gapMs = 0): Promise<{ text: string; written: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(relay.port, "127.0.0.1");
    let text = "";
    let written = 0;
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("error", reject);
    socket.on("close", () => resolve({ text, written }));
    const writeFrom = (i: number) => {
      if (i >= chunks.length || socket.destroyed) return;
      socket.write(chunks[i] ?? "");
      written++;
      setTimeout(() => writeFrom(i + 1), gapMs);
    };
    socket.on("connect", () => writeFrom(0));
  });
}

const statusLines = (text: string) =>
  [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

for (const [what, bytes, status] of [
  [
    "Content-Length with Transfer-Encoding",
    "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
  ],
  [
    "two different Content-Lengths",
    "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    400,
  ],
  ["a folded header (obs-fold)", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400],
  ["bare LF line ends", "GET /x HTTP/1.1\nHost: a\n\n", 400],
  [
    "a space before the colon",
    "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length : 4\r\n\r\nabcd",
    400,
  ],
  [
    "a Transfer-Encoding that does not end in chunked",
    "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    400,
  ],
  ["two Host headers", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b.evil.example\r\n\r\n", 400],
  ["HTTP/1.1 without Host", "GET /x HTTP/1.1\r\n\r\n", 400],
  [
    "headers over 16 KiB",
    `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${"b".repeat(17 * 1024)}\r\n\r\n`,
    431,
  ],
] as const) {
  test(`${what}: refused with ${status}, the connection closed, nothing reaches the server`, async () => {
    const before = upstream.seen.length;
    const { text } = await raw([bytes]);
    assert.deepEqual(statusLines(text), [status], text);
    assert.equal(upstream.seen.length, before);
  });
}

test("a request hidden in a body stays body: the server sees one POST whose body is the text", async () => {
  const hidden = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
  const before = upstream.seen.length;
  const { text } = await raw([
    `POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`,
  ]);
  assert.deepEqual(statusLines(text), [200]);
  assert.deepEqual(
    upstream.seen.slice(before).map((s) => [s.method, s.url, s.body]),
    [["POST", "/x", hidden]],
  );
});

test("pipelined requests in one write are each judged: 200, 403, 200 in order", async () => {
  const before = upstream.seen.length;
  const { text } = await raw([
    "GET /one HTTP/1.1\r\nHost: a\r\n\r\n" +
      "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n" +
      "GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
  ]);
  assert.deepEqual(statusLines(text), [200, 403, 200]);
  assert.match(text, /moat: blocked by rule no-admin\n/);
  assert.deepEqual(
    upstream.seen.slice(before).map((s) => s.url),
    ["/one", "/three"],
  );
});

test("slowloris: a head dribbled a line at a time gets 408 and is closed at the header timeout", async () => {
  const lines = [
    "GET /x HTTP/1.1\r\n",
    "Host: a\r\n",
    ...Array.from({ length: 200 }, (_, i) => `X-${i}: y\r\n`),
  ];
  const logged = relay.logs.length;
  const { text, written } = await raw(lines, 50);
  assert.deepEqual(statusLines(text), [408]);
  // each line does not restart the clock: the relay closed while the client was still sending
  assert.ok(written < lines.length, `closed after all ${written} lines were sent`);
  assert.deepEqual(relay.logs.slice(logged), [
    "http: no complete request head in time; closed with 408",
  ]);
});

test("an idle keep-alive connection is closed at the header timeout too", async () => {
  const logged = relay.logs.length;
  const { text } = await raw(["GET /x HTTP/1.1\r\nHost: a\r\n\r\n"]);
  assert.deepEqual(statusLines(text), [200, 408]);
  assert.deepEqual(relay.logs.slice(logged), [
    "http: no complete request head in time; closed with 408",
  ]);
});

test("a request whose body outlasts the header timeout is relayed; the idle after it gets 408", async () => {
  const logged = relay.logs.length;
  const { text } = await raw(
    ["POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n", "hi"],
    500, // past the 300 ms header timeout: the clock is stopped while the request is on
  );
  assert.deepEqual(statusLines(text), [200, 408]);
  assert.match(text, /"body":"hi"/);
  assert.deepEqual(relay.logs.slice(logged), [
    "http: no complete request head in time; closed with 408",
  ]);
});

for (const [what, line, host] of [
  ["userinfo in an absolute-form target", "GET http://x@api.evil.example/ HTTP/1.1", "a"],
  ["userinfo naming another host", "GET http://api.evil.example:80@a/ HTTP/1.1", "a"],
  ["a Host with two ports", "GET /x HTTP/1.1", "api.evil.example:80:80"],
  ["a Host with a port that is not digits", "GET /x HTTP/1.1", "api.evil.example:8x"],
  ["a Host with userinfo after an IPv6 literal", "GET /x HTTP/1.1", "[::1]@api.evil.example"],
  ["a CONNECT authority with two ports", "CONNECT api.evil.example:80:80 HTTP/1.1", "a"],
] as const) {
  test(`${what}: refused with 400, nothing reaches the server`, async () => {
    const before = upstream.seen.length;
    const { text } = await raw([`${line}\r\nHost: ${host}\r\nConnection: close\r\n\r\n`]);
    assert.deepEqual(statusLines(text), [400], text);
    assert.equal(upstream.seen.length, before);
  });
}

for (const [what, line, rule] of [
  ["a ws:// target's authority", "GET ws://api.evil.example/x HTTP/1.1", "no-evil-host"],
  ["a ws:// target's path", "GET ws://a/admin HTTP/1.1", "no-admin"],
  ["an ftp:// target's authority", "GET ftp://api.evil.example/x HTTP/1.1", "no-evil-host"],
] as const) {
  test(`an absolute-form target of any scheme is judged by its authority and path: ${what}`, async () => {
    const before = upstream.seen.length;
    const { text } = await raw([`${line}\r\nHost: a\r\nConnection: close\r\n\r\n`]);
    assert.deepEqual(statusLines(text), [403], text);
    assert.match(text, new RegExp(`moat: blocked by rule ${rule}\n`));
    assert.equal(upstream.seen.length, before);
  });
}

test("a Host of an IPv6 literal with a port is well formed: forwarded", async () => {
  const before = upstream.seen.length;
  const { text } = await raw(["GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n"]);
  assert.deepEqual(statusLines(text), [200], text);
  assert.equal(upstream.seen.length, before + 1);
});
