// An Expect list through the HTTP/1.x relay, against a server that refuses expectations it does
// not know with 417 (RFC 9110, 10.1.1): the 100-continue member is met on the client's hop, any
// other member reaches the server, which meets or refuses it as it would directly.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { httpHandler } from "../../../src/l7/http/index.ts";
import { startL7Relay } from "../../helpers/l7-http-relay.ts";
import { listenOnLoopback } from "../../helpers/ports.ts";

const POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules: []
`;

/** The Expect lines of each request the server read, and its answer: 417 for an unknown one. */
const seen: string[][] = [];
const sockets = new Set<Socket>();
const server = createServer((s) => {
  sockets.add(s);
  s.on("close", () => sockets.delete(s));
  let sofar = "";
  s.on("data", (c: Buffer) => {
    sofar += c.toString("latin1");
    if (!sofar.endsWith("\r\n\r\nhi")) return;
    const expect = [...sofar.matchAll(/\r\nexpect: *([^\r]*)/gi)].map((m) => m[1] ?? "");
    seen.push(expect);
    const members = expect.flatMap((v) => v.split(",")).map((m) => m.trim().toLowerCase());
    const unknown = members.some((m) => m !== "100-continue");
    s.end(
      unknown
        ? "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"
        : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
  });
});
const relay = await startL7Relay(POLICY, await listenOnLoopback(server), httpHandler());
after(async () => {
  await relay.close();
  sockets.forEach((s) => s.destroy());
  server.close();
});

/** The statuses a client sending `Expect: <expect>` and a 2-byte body reads, in order. */
function statuses(expect: string): Promise<number[]> {
  return new Promise((resolve) => {
    const c = connect(relay.port, "127.0.0.1");
    let text = "";
    c.on("data", (d: Buffer) => (text += d.toString("latin1")));
    c.on("error", () => {});
    c.on("close", () =>
      resolve([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))),
    );
    c.write(
      `POST /x HTTP/1.1\r\nHost: a.example\r\nExpect: ${expect}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`,
    );
  });
}

for (const [expect, upstream, answers] of [
  ["100-continue", [], [100, 200]],
  ["100-continue, x-other", ["x-other"], [100, 417]],
  ["X-Other=1 , 100-Continue", ["X-Other=1"], [100, 417]],
  ['x="a, 100-continue", 100-continue', ['x="a, 100-continue"'], [100, 417]],
  // not the 100-continue expectation, though Node's server answers 100 to it on the client's hop
  ["x-100-continue", ["x-100-continue"], [100, 417]],
] as const) {
  test(`Expect: ${expect}: the server reads ${JSON.stringify(upstream)}, the client gets ${answers.join(", ")}`, async () => {
    seen.length = 0;
    assert.deepEqual(await statuses(expect), answers);
    assert.deepEqual(seen, [upstream]);
  });
}
