// Request lines a lenient HTTP/1 server reads as requests (whitespace runs or tabs between the
// parts, whitespace before or after the line, bare CRs before it, HTTP/0.9's line without a
// version) are HTTP to the relay: judged, or refused by its parser with 400, never passed raw to
// the server. The server here is a plain TCP listener that records every byte, so a line passed
// on raw would show in what it received.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { parsePolicy } from "../../../src/config/index.ts";
import { sniff, type L7Relay } from "../../../src/l7/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { HTTP_POLICY } from "../../helpers/l7-http-policy.ts";

test("lenient request lines are sniffed as HTTP", () => {
  for (const line of [
    "GET  /admin HTTP/1.1\r\n",
    "GET\t/admin HTTP/1.1\r\n",
    "GET /admin HTTP/1.1 \r\n",
    " GET /admin HTTP/1.1\r\n",
    "\tGET /admin HTTP/1.1\r\n",
    "GET /admin\r\n",
    "GET /admin \n",
    "\r\rGET /admin HTTP/1.1\r\n",
    "POST\t/admin\tHTTP/1.0\n",
    "GET \x0b/admin\x0cHTTP/1.1\r\n",
  ])
    assert.equal(sniff(Buffer.from(line, "latin1")), "http", JSON.stringify(line));
  for (const other of [
    "HELO x\r\n",
    "GET\r\n",
    "GET \r\n",
    "POST /admin\r\n",
    "G(ET /x HTTP/1.1\r\n",
  ])
    assert.equal(sniff(Buffer.from(other, "latin1")), "unknown", JSON.stringify(other));
});

let server: Server;
let relay: L7Relay;
let events: MoatEvent[];
let logs: string[];
/** Every byte the server received, all connections. */
let received = "";
before(async () => {
  // answers 200 to whatever it reads: a request passed on raw would be served
  server = createServer((s: Socket) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      received += d.toString("latin1");
      if (received.includes("\n"))
        s.end("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nserved\n");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  ({ relay, events, logs } = await openRealRelay({
    port,
    policy: parsePolicy(HTTP_POLICY, "p.yaml"),
    headerTimeoutMs: 500,
  }));
});
after(() => {
  relay.close();
  server.close();
});

/** Writes `text` to the relay (then ends its side, if `end`); all it answered until it closed. */
function talk(text: string, end = false): Promise<string> {
  return new Promise((resolve) => {
    const a = relay.addressFor(4)!;
    const s = connect({ port: a.port, host: a.ip, allowHalfOpen: true });
    let answer = "";
    s.on("data", (d: Buffer) => (answer += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => resolve(answer));
    s.on("end", () => s.destroy());
    s.on("connect", () => (end ? s.end(text) : s.write(text)));
  });
}

const statuses = (text: string) =>
  [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
const H = "Host: a\r\nConnection: close\r\n\r\n";

for (const [what, text, status, end = false] of [
  ["two spaces after the method (Node reads it)", `GET  /admin HTTP/1.1\r\n${H}`, 403],
  ["bare CRs before the request line (Node reads it)", `\r\rGET /admin HTTP/1.1\r\n${H}`, 403],
  ["a tab after the method", `GET\t/admin HTTP/1.1\r\n${H}`, 400],
  ["a space after the version", `GET /admin HTTP/1.1 \r\n${H}`, 400],
  ["a space before the method", ` GET /admin HTTP/1.1\r\n${H}`, 400],
  ["an HTTP/0.9 request line and an empty line", "GET /admin\r\n\r\n", 400],
  ["an HTTP/0.9 request line, then the client's end", "GET /admin\r\n", 400, true],
] as const) {
  test(`${what}: answered ${status} by moat, never passed to the server`, async () => {
    received = "";
    const answer = await talk(text, end);
    assert.deepEqual(statuses(answer), [status], answer);
    assert.equal(received, "", "the server received bytes");
  });
}

test("a request Node reads past two spaces is judged: its event names the rule", async () => {
  const before = events.length;
  await talk(`GET  /admin/x HTTP/1.1\r\n${H}`);
  const e = events.slice(before).at(-1);
  assert.deepEqual([e?.type, e?.rule, e?.layer7?.http?.path], ["blocked", "no-admin", "/admin/x"]);
});

test("a request line Node's parser refuses is logged as a malformed request", async () => {
  const before = logs.length;
  await talk(`GET\t/admin HTTP/1.1\r\n${H}`);
  assert.ok(
    logs.slice(before).some((l) => l.includes("refused a malformed request")),
    logs.slice(before).join("\n"),
  );
});

test("an allowed request with two spaces goes on as Node parsed it", async () => {
  received = "";
  const answer = await talk(`GET  /ok HTTP/1.1\r\n${H}`);
  assert.deepEqual(statuses(answer), [200], answer);
  assert.match(received, /^GET \/ok HTTP\/1\.1\r\n/);
});
