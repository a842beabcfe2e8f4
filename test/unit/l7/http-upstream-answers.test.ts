// What a hostile or broken server answers through the HTTP/1.x handler: an answer Node's client
// reads but moat cannot pass on as it came (a status outside 100-999, a reason with a control
// character) is answered to the client with 502 and the server's connection closed; the relay
// keeps running.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { startL7Relay } from "../../helpers/l7-http-relay.ts";
import { HTTP_POLICY } from "../../helpers/l7-http-policy.ts";

/** A server that answers every request on a connection with `answer`, as bytes. */
async function answering(
  answer: string,
): Promise<{ port: number; server: Server; closed: () => boolean }> {
  const state = { closed: false };
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => (state.closed = true));
    s.on("data", () => s.write(Buffer.from(answer, "latin1")));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  server.on("close", () => sockets.forEach((s) => s.destroy()));
  return { port: (server.address() as AddressInfo).port, server, closed: () => state.closed };
}

/** Sends one request and returns all the relay answered until it closed the connection (or 2 s). */
function exchange(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    s.setTimeout(2000, () => s.destroy());
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString("latin1")));
    s.on("error", reject);
    s.on("close", () => resolve(text));
    s.on("connect", () => s.write("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  });
}

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

for (const [what, answer] of [
  ["status 099", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n"],
  ["status 000", "HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n"],
  ["a reason with byte 0x7f", "HTTP/1.1 200 A\x7fB\r\nContent-Length: 2\r\n\r\nok"],
] as const) {
  test(`a server answering with ${what} gets the client a 502 and is closed; nothing throws`, async () => {
    const up = await answering(answer);
    servers.push(up.server);
    const relay = await startL7Relay(HTTP_POLICY, up.port, httpHandler());
    try {
      const text = await exchange(relay.port);
      assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
      assert.doesNotMatch(text, /\x7f/);
      assert.equal(relay.reports.at(-1)?.layer7.http?.status, 502);
      assert.ok(up.closed(), "the server's connection is closed");
    } finally {
      await relay.close();
    }
  });
}

test("a server answering with an obs-text reason and header value is passed on as it came", async () => {
  const up = await answering("HTTP/1.1 200 \xe9t\xe9\r\nX-A: \xffb\r\nContent-Length: 2\r\n\r\nok");
  servers.push(up.server);
  const relay = await startL7Relay(HTTP_POLICY, up.port, httpHandler());
  try {
    const text = await exchange(relay.port);
    assert.match(text, /^HTTP\/1\.1 200 \xe9t\xe9\r\n/);
    assert.match(text, /\r\nx-a: \xffb\r\n/i);
  } finally {
    await relay.close();
  }
});
