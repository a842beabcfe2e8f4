// CONNECT and Upgrade: websocket through the HTTP handler: judged like any request (403 when
// blocked); once allowed and the server switches, both sockets go to the relay's splice and bytes
// flow both ways untouched.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { once } from "node:events";
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

/** Reads from the socket until `text` has arrived; returns all read so far. */
async function until(socket: Socket, text: string, sofar = { data: "" }): Promise<string> {
  while (!sofar.data.includes(text)) {
    const [chunk] = (await Promise.race([once(socket, "data"), once(socket, "close")])) as [
      Buffer?,
    ];
    if (!chunk) break;
    sofar.data += chunk.toString("latin1");
  }
  return sofar.data;
}

async function open(head: string): Promise<{ socket: Socket; answer: string }> {
  const socket = connect(relay.port, "127.0.0.1");
  await once(socket, "connect");
  socket.write(head);
  const answer = await until(socket, "\r\n\r\n");
  return { socket, answer };
}

test("CONNECT allowed: the server's 200 comes back, then the tunnel is spliced and echoes", async () => {
  const splices = relay.splices;
  const { socket, answer } = await open(
    "CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n",
  );
  assert.match(answer, /^HTTP\/1\.1 200 /);
  socket.write("ping through the tunnel");
  const echoed = await until(socket, "ping through the tunnel");
  assert.ok(echoed.endsWith("ping through the tunnel"));
  socket.destroy();
  assert.equal(relay.splices, splices + 1);
  const last = relay.reports.at(-1);
  assert.equal(last?.verdict, "allowed");
  assert.equal(last?.splice, "copy");
  assert.equal(last?.layer7.http?.method, "CONNECT");
  assert.equal(last?.layer7.http?.host, "www.example.org:443");
});

test("CONNECT blocked by host: 403 naming the rule, closed, the server never sees it", async () => {
  const before = upstream.seen.length;
  const { socket, answer } = await open(
    "CONNECT intranet.example:443 HTTP/1.1\r\nHost: intranet.example:443\r\n\r\n",
  );
  const all = await until(socket, "no-tunnel-to-intranet\n", { data: answer });
  assert.match(all, /^HTTP\/1\.1 403 /);
  assert.match(all, /moat: blocked by rule no-tunnel-to-intranet\n/);
  socket.destroy();
  assert.equal(upstream.seen.length, before);
});

const upgrade = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: www.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

test("websocket upgrade allowed: 101 from the server, then frames flow both ways through the splice", async () => {
  const splices = relay.splices;
  const { socket, answer } = await open(upgrade("/live"));
  assert.match(answer, /^HTTP\/1\.1 101 /);
  const seen = upstream.seen.at(-1);
  assert.equal(seen?.headers.upgrade, "websocket");
  assert.equal(seen?.headers["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
  socket.write("\x81\x05hello");
  assert.ok((await until(socket, "hello")).endsWith("\x81\x05hello"));
  socket.destroy();
  assert.equal(relay.splices, splices + 1);
  assert.equal(relay.reports.at(-1)?.layer7.http?.status, 101);
});

test("websocket upgrade blocked by path and header: 403, nothing spliced", async () => {
  const splices = relay.splices;
  const { socket, answer } = await open(upgrade("/chat"));
  const all = await until(socket, "no-ws-chat\n", { data: answer });
  assert.match(all, /^HTTP\/1\.1 403 /);
  socket.destroy();
  assert.equal(relay.splices, splices);
  assert.equal(relay.reports.at(-1)?.rule, "no-ws-chat");
});
