// h2c with prior knowledge through the HTTP handler: curl and Node's http2 client against a real
// HTTP/2 server; each stream on one connection is judged (version "2"), blocked streams get 403.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer as createH2Server, type ClientHttp2Session } from "node:http2";
import { connect as tcp } from "node:net";
import { once } from "node:events";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { startL7Relay, type L7Relay } from "../../helpers/l7-http-relay.ts";
import { startH2Echo, type Upstream } from "../../helpers/http-echo.ts";
import { HTTP_POLICY } from "../../helpers/l7-http-policy.ts";

let upstream: Upstream;
let relay: L7Relay;
before(async () => {
  upstream = await startH2Echo();
  relay = await startL7Relay(HTTP_POLICY, upstream.port, httpHandler({ headersTimeoutMs: 2000 }));
});
after(async () => {
  await relay.close();
  await upstream.close();
});

function get(
  session: ClientHttp2Session,
  path: string,
  method = "GET",
  body?: string,
  extra: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": method,
      ":path": path,
      ":authority": "www.example.org",
      ...extra,
    });
    let text = "";
    let status = 0;
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => resolve({ status, body: text }));
    req.on("error", reject);
    req.end(body);
  });
}

test("curl --http2-prior-knowledge: allowed, forwarded as HTTP/2, reported as version 2", async () => {
  const run = promisify(execFile);
  const out = await run("curl", [
    "-s",
    "--http2-prior-knowledge",
    "-H",
    "Host: www.example.org",
    `http://127.0.0.1:${relay.port}/v2/items?q=1`,
  ]);
  const seen = JSON.parse(out.stdout);
  assert.equal(seen.url, "/v2/items?q=1");
  assert.equal(seen.version, "2");
  const last = relay.reports.at(-1);
  assert.equal(last?.verdict, "allowed");
  assert.equal(last?.layer7.http?.version, "2");
  assert.equal(last?.layer7.http?.status, 200);
  assert.equal(last?.layer7.http?.path, "/v2/items");
});

test("one h2c connection: allowed, blocked (by path, by version+path, by method), detected; each judged", async () => {
  const session = connect(`http://127.0.0.1:${relay.port}`);
  session.on("error", () => {});
  const before = upstream.seen.length;
  const results = [
    await get(session, "/ok"),
    await get(session, "/admin/x"),
    await get(session, "/secret"),
    await get(session, "/x", "DELETE"),
    await get(session, "/upload/f", "POST", "data"),
    await get(session, "/ok/again"),
  ];
  session.close();
  assert.deepEqual(
    results.map((r) => r.status),
    [200, 403, 403, 403, 200, 200],
  );
  assert.equal(results[2]?.body, "moat: blocked by rule no-h2-secret\n");
  assert.equal(JSON.parse(results[4]?.body ?? "{}").body, "data");
  assert.deepEqual(
    upstream.seen.slice(before).map((s) => s.url),
    ["/ok", "/upload/f", "/ok/again"],
  );
  assert.deepEqual(
    relay.reports.slice(-6).map((r) => `${r.verdict} ${r.rule}`),
    [
      "allowed default",
      "blocked no-admin",
      "blocked no-h2-secret",
      "blocked no-delete",
      "detected watch-uploads",
      "allowed default",
    ],
  );
});

test("a host header that differs from :authority is refused as malformed (400); an equal one passes", async () => {
  const session = connect(`http://127.0.0.1:${relay.port}`);
  session.on("error", () => {});
  const before = upstream.seen.length;
  const reports = relay.reports.length;
  const other = await get(session, "/x", "GET", undefined, { host: "api.evil.example" });
  const same = await get(session, "/y", "GET", undefined, { host: "WWW.example.org" });
  session.close();
  assert.equal(other.status, 400);
  assert.equal(other.body, "moat: malformed request\n");
  assert.equal(same.status, 200);
  assert.deepEqual(
    upstream.seen.slice(before).map((s) => s.url),
    ["/y"],
  );
  // a malformed request is logged, not reported
  assert.equal(relay.reports.length, reports + 1);
  assert.ok(relay.logs.some((l) => l.includes("host") && l.includes(":authority")));
});

test("HTTP/1.1 to /secret passes: that rule judges version 2 only", async () => {
  const run = promisify(execFile);
  const out = await run("curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    `http://127.0.0.1:${relay.port}/secret`,
  ]);
  // the upstream speaks only HTTP/2: moat forwarded the request, the server refused the protocol
  assert.notEqual(out.stdout, "403");
  assert.equal(relay.reports.at(-1)?.layer7.http?.version, "1.1");
});

test("an h2c connection that opens no stream is closed at the header timeout", async () => {
  const slow = await startL7Relay(
    HTTP_POLICY,
    upstream.port,
    httpHandler({ headersTimeoutMs: 300 }),
  );
  const socket = tcp(slow.port, "127.0.0.1");
  socket.on("data", () => {});
  socket.on("error", () => {});
  await once(socket, "connect");
  // the preface and an empty SETTINGS frame, then nothing
  socket.write(
    Buffer.concat([
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
    ]),
  );
  await once(socket, "close");
  await slow.close();
  // the relay closed it, and says why
  assert.deepEqual(slow.logs, ["http: no HTTP/2 request in time; closed"]);
});

/**
 * A stream that expects 100-continue through the relay to a server that meets it as Node's
 * http2 compat server does (`100` when the expectation is exactly 100-continue, else 417): the
 * body goes once a 100 comes (or, should none come, after a second, as curl does), never after
 * a final answer. What the client read, and the Expect the server read.
 */
async function expecting(
  port: number,
  path: string,
  expect: string,
): Promise<{ continued: boolean; status: number; serverRead: string | undefined }> {
  const session = connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const req = session.request({
    ":method": "POST",
    ":path": path,
    ":authority": "www.example.org",
    expect,
  });
  let continued = false;
  let status = 0;
  let text = "";
  const send = () => {
    if (!req.writableEnded) req.end("data");
  };
  // a safety net, not a measure: a client that gets no 100 sends its body anyway
  const fallback = setTimeout(send, 1000);
  req.on("continue", () => {
    continued = true;
    send();
  });
  req.on("response", (h) => {
    status = Number(h[":status"]);
    if (status >= 200 && !req.writableEnded) req.close();
  });
  req.on("data", (c: Buffer) => (text += c.toString()));
  req.on("error", () => {});
  await once(req, "close");
  clearTimeout(fallback);
  session.close();
  const serverRead = status === 200 ? (JSON.parse(text) as { expect?: string }).expect : undefined;
  return { continued, status, serverRead };
}

test("h2c Expect: judged before any 100; allowed, it reaches the server, whose 100 reaches the client", async () => {
  const compat = createH2Server((request, response) => {
    request.resume();
    request.on("end", () => response.end(JSON.stringify({ expect: request.headers.expect })));
  });
  const port = await new Promise<number>((resolve) =>
    compat.listen(0, "127.0.0.1", () => resolve((compat.address() as { port: number }).port)),
  );
  const through = await startL7Relay(HTTP_POLICY, port, httpHandler());
  try {
    assert.deepEqual(await expecting(through.port, "/up", "100-continue"), {
      continued: true,
      status: 200,
      serverRead: "100-continue",
    });
    // the server refuses an expectation it does not know, as it would directly
    assert.deepEqual(await expecting(through.port, "/up", "100-continue, x-other"), {
      continued: false,
      status: 417,
      serverRead: undefined,
    });
    // blocked: moat's 403 alone
    assert.deepEqual(await expecting(through.port, "/admin/x", "100-continue"), {
      continued: false,
      status: 403,
      serverRead: undefined,
    });
    assert.deepEqual(
      through.reports.map((r) => [r.verdict, r.rule, r.layer7.http?.status]),
      [
        ["allowed", "default", 200],
        ["allowed", "default", 417],
        ["blocked", "no-admin", 403],
      ],
    );
  } finally {
    await through.close();
    compat.close();
  }
});
