// Expect through the HTTP/1.x relay, against a server that meets 100-continue as servers do (its
// `100 Continue` as soon as it has the head) and refuses expectations it does not know with 417
// (RFC 9110, 10.1.1). moat judges the request before anyone answers: a blocked one gets moat's
// 403 alone, an allowed one reaches the server with its Expect as sent, and the server's 100 (or
// its refusal) reaches the client, which sends its body only then, as curl does.
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
rules:
  - { name: no-blocked, direction: egress, action: block, layer7: { http: { path: ["/blocked"] } } }
`;

/** The Expect lines of each request head the server read. */
const seen: string[][] = [];
const sockets = new Set<Socket>();
const server = createServer((s) => {
  sockets.add(s);
  s.on("close", () => sockets.delete(s));
  let sofar = "";
  let headRead = false;
  s.on("data", (c: Buffer) => {
    sofar += c.toString("latin1");
    if (!headRead && sofar.includes("\r\n\r\n")) {
      headRead = true;
      const expect = [...sofar.matchAll(/\r\nexpect: *([^\r]*)/gi)].map((m) => m[1] ?? "");
      seen.push(expect);
      const members = expect.flatMap((v) => v.split(",")).map((m) => m.trim().toLowerCase());
      if (members.some((m) => m !== "100-continue"))
        return void s.end("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
      if (members.length > 0) s.write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (headRead && sofar.endsWith("\r\n\r\nhi"))
      s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });
});
const relay = await startL7Relay(POLICY, await listenOnLoopback(server), httpHandler());
after(async () => {
  await relay.close();
  sockets.forEach((s) => s.destroy());
  server.close();
});

/**
 * The statuses a client sending `Expect: <expect>` and a 2-byte body reads, in order. An HTTP/1.1
 * client sends the body once it reads a 100 (never after a final answer); an HTTP/1.0 one at once.
 */
function statuses(expect: string, path = "/x", version = "1.1"): Promise<number[]> {
  return new Promise((resolve) => {
    const c = connect(relay.port, "127.0.0.1");
    let text = "";
    let waits = version === "1.1";
    c.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (waits && /^HTTP\/1\.1 100 /.test(text)) {
        waits = false;
        c.write("hi");
      }
    });
    c.on("error", () => {});
    // a safety net, not a measure: an exchange that stalls fails on its statuses, never hangs
    c.setTimeout(3000, () => c.destroy());
    c.on("close", () =>
      resolve([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))),
    );
    c.write(
      `POST ${path} HTTP/${version}\r\nHost: a.example\r\nExpect: ${expect}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n${waits ? "" : "hi"}`,
    );
  });
}

for (const [expect, upstream, answers] of [
  ["100-continue", ["100-continue"], [100, 200]],
  ["100-continue, x-other", ["100-continue, x-other"], [417]],
  ["X-Other=1 , 100-Continue", ["X-Other=1 , 100-Continue"], [417]],
  ['x="a, 100-continue", 100-continue', ['x="a, 100-continue", 100-continue'], [417]],
  // not the 100-continue expectation, though Node's server takes it for one
  ["x-100-continue", ["x-100-continue"], [417]],
] as const) {
  test(`Expect: ${expect}: the server reads ${JSON.stringify(upstream)}, the client gets ${answers.join(", ")}`, async () => {
    seen.length = 0;
    assert.deepEqual(await statuses(expect), answers);
    assert.deepEqual(seen, [upstream]);
  });
}

test("a blocked request with Expect: 100-continue gets moat's 403 alone, never a 100", async () => {
  seen.length = 0;
  const reports = relay.reports.length;
  assert.deepEqual(await statuses("100-continue", "/blocked"), [403]);
  assert.deepEqual(seen, [], "the server never saw it");
  assert.deepEqual(
    relay.reports.slice(reports).map((r) => [r.verdict, r.rule, r.layer7.http?.status]),
    [["blocked", "no-blocked", 403]],
  );
});

test("HTTP/1.0 knows no 100-continue (RFC 9110, 10.1.1): the server reads none, the client gets no 100", async () => {
  seen.length = 0;
  assert.deepEqual(await statuses("100-continue", "/x", "1.0"), [200]);
  assert.deepEqual(seen, [[]]);
});
