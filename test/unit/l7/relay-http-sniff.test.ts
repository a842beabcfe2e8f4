// What an HTTP/1 server would read as a request is judged as HTTP by the relay, whatever its
// method and with empty lines before it; bytes that may still become a request line wait (within
// the header timeout, then the connection is closed, never forwarded); other bytes stay unknown.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, type AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import { parsePolicy } from "../../../src/config/index.ts";
import { sniff, type L7Relay } from "../../../src/l7/index.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";

test("a request line is told by its form: any method token, empty lines before it skipped", () => {
  const b = (s: string) => Buffer.from(s, "latin1");
  for (const http of [
    "GET / HTTP/1.1\r\n",
    "\r\nGET /admin HTTP/1.1\r\n",
    "\r\n\r\n\nGET / HTTP/1.0\n",
    "PROPFIND /a HTTP/1.1\r\n",
    "QUERY /x HTTP/1.1\n",
    "X-MY_METHOD! * HTTP/9.9\r\n",
    "PRI * HTTP/2.0\r\n",
    // read as leniently as servers read it (docs/l7-http.md): Node's parser then judges or refuses it
    "GET  / HTTP/1.1\r\n",
    "GET / HTTP/1.1 \r\n",
    "GET / HTTP/11\r\n",
    "GET / FTP/1.1\r\n",
  ])
    assert.equal(sniff(b(http)), "http", JSON.stringify(http));
  for (const more of [
    "G",
    "\r\n",
    "\r",
    "\r\nPROP",
    "GET ",
    "GET /x",
    "GET /x HTTP/1.",
    "GET /x HTTP/1.1",
    "GET /x HTTP/1.1\r",
    "SS",
    "\r\r",
  ])
    assert.equal(sniff(b(more)), "more", JSON.stringify(more));
  for (const unknown of [
    "HELO x\r\n",
    "\r\nHELO x\r\n",
    "GET\r\n",
    "G(",
    "\x00\x01",
    "POST /x\r\n",
  ])
    assert.equal(sniff(b(unknown)), "unknown", JSON.stringify(unknown));
});

const POLICY_TEXT = (port: number) => `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: no-admin
    direction: egress
    action: block
    layer7: { http: { path: ["/admin", "/admin/*"] } }
  - name: web
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [${port}] }
`;

let upstream: Server;
let relay: L7Relay;
const seen: string[] = [];
before(async () => {
  upstream = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end("ok\n");
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  const port = (upstream.address() as AddressInfo).port;
  const policy = parsePolicy(POLICY_TEXT(port), "p.yaml");
  ({ relay } = await openRealRelay({ port, policy, headerTimeoutMs: 400 }));
});
after(() => {
  relay.close();
  upstream.close();
});

/** Writes the chunks, a pause between each; all the relay answered until it closed (or 1.5 s). */
function talk(chunks: string[], gapMs = 30): Promise<string> {
  return new Promise((resolve) => {
    const a = relay.addressFor(4)!;
    const s = connect(a.port, a.ip);
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => resolve(text));
    s.setTimeout(1500, () => s.destroy());
    const writeFrom = (i: number) => {
      if (i >= chunks.length || s.destroyed) return;
      s.write(chunks[i] ?? "");
      setTimeout(() => writeFrom(i + 1), gapMs);
    };
    s.on("connect", () => writeFrom(0));
  });
}

const statuses = (text: string) =>
  [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
const A = "Host: a\r\n\r\n";

for (const [what, chunks, expected] of [
  [
    "a leading CRLF, then two keep-alive requests",
    [`\r\nGET /admin HTTP/1.1\r\n${A}GET /admin/x HTTP/1.1\r\n${A}`],
    [403, 403],
  ],
  ["a leading CRLF alone in its first packet", ["\r\n", `GET /admin HTTP/1.1\r\n${A}`], [403]],
  ["a method outside the common ones (PROPFIND)", [`PROPFIND /admin HTTP/1.1\r\n${A}`], [403]],
  [
    "QUERY, then an allowed request on the same connection",
    [`QUERY /admin HTTP/1.1\r\n${A}GET /ok HTTP/1.1\r\n${A}`],
    [403, 200],
  ],
  ["a method sent one byte first", ["G", `ET /admin HTTP/1.1\r\n${A}`], [403]],
  [
    "a method Node's parser does not know (refused with 400)",
    [`FOO /admin HTTP/1.1\r\n${A}`],
    [400],
  ],
] as const) {
  test(`${what}: judged as HTTP, blocked requests never reach the server`, async () => {
    seen.length = 0;
    const text = await talk([...chunks]);
    assert.deepEqual(statuses(text), expected);
    assert.ok(!seen.some((r) => r.includes("/admin")), `the server saw ${seen.join(", ")}`);
  });
}

test("an empty line before an allowed request is not forwarded: the request is sent as parsed", async () => {
  seen.length = 0;
  const text = await talk([`\r\nGET /ok HTTP/1.1\r\n${A}`]);
  assert.deepEqual(statuses(text), [200]);
  assert.deepEqual(seen, ["GET /ok"]);
});

test("a request line still incomplete at the header timeout: closed, nothing forwarded", async () => {
  seen.length = 0;
  const before = relay.stats.allowed;
  const text = await talk(["G", `ET /admin HTTP/1.1\r\n${A}`], 700);
  assert.doesNotMatch(text, /^HTTP\/1\.1 200/m);
  assert.deepEqual(seen, []);
  assert.equal(relay.stats.allowed, before);
});
