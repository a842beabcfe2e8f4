// The HTTP/1.x handler with a real client and a real upstream on loopback, judged by the real
// evaluator: each field allows, blocks (403 naming moat and the rule) or detects (forwarded and
// reported); each request of a keep-alive connection is judged on its own; what reaches the
// upstream is the request moat parsed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request, Agent, type IncomingHttpHeaders } from "node:http";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { startL7Relay, type L7Relay } from "../../helpers/l7-http-relay.ts";
import { startHttpEcho, type Upstream } from "../../helpers/http-echo.ts";
import { HTTP_POLICY } from "../../helpers/l7-http-policy.ts";

let upstream: Upstream;
let relay: L7Relay;
before(async () => {
  upstream = await startHttpEcho();
  relay = await startL7Relay(HTTP_POLICY, upstream.port, httpHandler());
});
after(async () => {
  await relay.close();
  await upstream.close();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  port: number;
}

function send(
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: relay.port,
        path,
        method: options.method ?? "GET",
        headers: { host: "www.example.org", ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            port: res.socket?.localPort ?? 0,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const last = () => relay.reports.at(-1);

test("an allowed request reaches the upstream and its answer comes back; the report names it", async () => {
  const before = upstream.seen.length;
  const a = await send("/v1/items?x=1", { headers: { "user-agent": "curl/8" } });
  assert.equal(a.status, 200);
  assert.equal(a.headers["x-upstream"], "echo");
  const seen = JSON.parse(a.body);
  assert.equal(seen.url, "/v1/items?x=1");
  assert.equal(seen.headers.host, "www.example.org");
  assert.equal(upstream.seen.length, before + 1);
  assert.deepEqual(last(), {
    verdict: "allowed",
    rule: "default",
    layer7: {
      http: {
        method: "GET",
        host: "www.example.org",
        path: "/v1/items",
        headers: {},
        version: "1.1",
        status: 200,
      },
    },
  });
});

for (const [what, path, options, rule] of [
  ["path", "/admin/users", {}, "no-admin"],
  ["path after normalisation (%61 and dot segments)", "/public/../%61dmin", {}, "no-admin"],
  ["method", "/x", { method: "DELETE" }, "no-delete"],
  ["host", "/x", { headers: { host: "api.evil.example:8080" } }, "no-evil-host"],
  ["host with an empty port", "/x", { headers: { host: "api.evil.example:" } }, "no-evil-host"],
  ["path with a fragment", "/admin#x", {}, "no-admin"],
  [
    "the authority of an absolute-form target (it wins over Host)",
    "http://api.evil.example/x",
    {},
    "no-evil-host",
  ],
  ["header", "/x", { headers: { "user-agent": "badbot/2" } }, "no-bot"],
] as const) {
  test(`a request blocked by ${what} gets 403 naming moat and the rule; the upstream never sees it`, async () => {
    const before = upstream.seen.length;
    const a = await send(path, options);
    assert.equal(a.status, 403);
    assert.equal(a.body, `moat: blocked by rule ${rule}\n`);
    assert.equal(upstream.seen.length, before);
    assert.equal(last()?.verdict, "blocked");
    assert.equal(last()?.rule, rule);
    assert.equal(last()?.layer7.http?.status, 403);
  });
}

test("a stray % is escaped, so the path judged is the one any server decodes (no escape formed by decoding)", async () => {
  for (const [sent, forwarded] of [
    ["/%6%31dmin", "/%2561dmin"],
    ["/public/%2%65%2%65/admin", "/public/%252e%252e/admin"],
    ["/50%-off", "/50%25-off"],
  ] as const) {
    const a = await send(sent);
    assert.equal(a.status, 200, sent);
    assert.equal(JSON.parse(a.body).url, forwarded, sent);
  }
});

test("a blocked upload gets its 403 though its body is never read; the connection closes", async () => {
  const before = upstream.seen.length;
  const a = await send("/admin/upload", { method: "POST", body: "u".repeat(4_000_000) });
  assert.equal(a.status, 403);
  assert.equal(a.body, "moat: blocked by rule no-admin\n");
  assert.equal(a.headers.connection, "close");
  assert.equal(upstream.seen.length, before);
});

test("header globs are case-sensitive on the value, names are not: another agent passes", async () => {
  assert.equal((await send("/x", { headers: { "User-Agent": "goodbot" } })).status, 200);
  assert.equal((await send("/x", { headers: { "USER-AGENT": "badbot" } })).status, 403);
});

test("version: an HTTP/1.0 request is judged as 1.0 (curl --http1.0)", async () => {
  const run = promisify(execFile);
  const out = await run("curl", [
    "-s",
    "--http1.0",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    `http://127.0.0.1:${relay.port}/x`,
  ]);
  assert.equal(out.stdout, "403");
  assert.equal(last()?.rule, "no-http10");
  assert.equal(last()?.layer7.http?.version, "1.0");
});

test("detect: the request is forwarded and reported as detected", async () => {
  const a = await send("/upload/a.txt", { method: "POST", body: "hello" });
  assert.equal(a.status, 200);
  assert.equal(JSON.parse(a.body).body, "hello");
  assert.equal(last()?.verdict, "detected");
  assert.equal(last()?.rule, "watch-uploads");
});

test("keep-alive: one connection, an allowed then a blocked then an allowed request, each judged", async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const before = upstream.seen.length;
  const first = await send("/ok/1", { agent });
  const second = await send("/admin", { agent });
  const third = await send("/ok/3", { agent, method: "PUT", body: "x".repeat(100_000) });
  agent.destroy();
  assert.deepEqual([first.status, second.status, third.status], [200, 403, 200]);
  assert.equal(first.port, second.port);
  assert.equal(second.port, third.port);
  assert.deepEqual(
    upstream.seen.slice(before).map((s) => s.url),
    ["/ok/1", "/ok/3"],
  );
  assert.equal(JSON.parse(third.body).body.length, 100_000);
  assert.deepEqual(
    relay.reports.slice(-3).map((r) => `${r.verdict} ${r.layer7.http?.path}`),
    ["allowed /ok/1", "blocked /admin", "allowed /ok/3"],
  );
});

test("a chunked request body is streamed to the upstream, re-framed by moat", async () => {
  const a = await new Promise<Answer>((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: relay.port, path: "/stream", method: "POST", agent: false },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, port: 0 }),
        );
      },
    );
    req.on("error", reject);
    req.write("part one,");
    setImmediate(() => req.end("part two"));
  });
  assert.equal(a.status, 200);
  const seen = JSON.parse(a.body);
  assert.equal(seen.body, "part one,part two");
  assert.equal(seen.headers["transfer-encoding"], "chunked");
});

test("events cap the path at 256 characters", async () => {
  const long = `/${"p".repeat(1000)}`;
  assert.equal((await send(long)).status, 200);
  assert.equal(last()?.layer7.http?.path?.length, 256);
});

test("hop-by-hop headers stay with moat: the upstream sees neither the client's Connection tokens nor Upgrade: h2c", async () => {
  const a = await send("/hop", {
    headers: {
      connection: "x-secret, upgrade, http2-settings",
      "x-secret": "1",
      upgrade: "h2c",
      "http2-settings": "AAMAAABkAAQAAP__",
    },
  });
  assert.equal(a.status, 200);
  const seen = JSON.parse(a.body);
  assert.equal(seen.headers["x-secret"], undefined);
  assert.equal(seen.headers.upgrade, undefined);
  assert.equal(seen.headers["http2-settings"], undefined);
});
