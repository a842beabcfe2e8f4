// A request with an absolute-form target (`GET http://host/x`) is judged by the target's
// authority, and that authority is the Host the server receives (RFC 9112, 3.2.2): a different
// Host header sent beside it never reaches the server, so the server serves the host moat judged.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { L7Relay } from "../../helpers/l7-http-relay.ts";
import { startHttpEcho, type Upstream } from "../../helpers/http-echo.ts";
import { startEchoRelay } from "../../helpers/l7-echo-relay.ts";

// the echo server behind the relay, judged by ALLOWED_HOST_POLICY: allowed.moat.test is allowed
// (rule web-allowed), any other HTTP blocked
let upstream: Upstream;
let relay: L7Relay;
let close: () => Promise<void>;
before(async () => ({ upstream, relay, close } = await startEchoRelay(startHttpEcho)));
after(() => close());

test("curl --request-target http://allowed/ with Host: other: the server receives Host: allowed", async () => {
  const before = upstream.seen.length;
  const out = await promisify(execFile)("curl", [
    "-sS",
    "-w",
    "\\n%{http_code}",
    "--request-target",
    "http://allowed.moat.test/",
    "-H",
    "Host: other.moat.test",
    `http://127.0.0.1:${relay.port}/`,
  ]);
  assert.match(out.stdout, /\n200$/);
  assert.equal(relay.reports.at(-1)?.rule, "web-allowed");
  assert.equal(upstream.seen.length, before + 1);
  assert.equal(upstream.seen.at(-1)?.headers.host, "allowed.moat.test");
});

/** Writes `text` and reads until the relay has answered with a status line (or closed). */
function raw(text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(relay.port, "127.0.0.1");
    let answer = "";
    s.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
      if (answer.includes("\r\n\r\n")) s.destroy();
    });
    s.on("error", () => {});
    s.on("close", () => resolve(answer));
    s.setTimeout(3000, () => s.destroy());
    s.write(text);
  });
}

for (const [what, line, extra, host] of [
  [
    "a websocket upgrade to ws://allowed",
    "GET ws://allowed.moat.test/chat HTTP/1.1",
    "Connection: Upgrade\r\nUpgrade: websocket\r\n",
    "allowed.moat.test",
  ],
  [
    "a CONNECT to allowed:443",
    "CONNECT allowed.moat.test:443 HTTP/1.1",
    "",
    "allowed.moat.test:443",
  ],
  [
    "a target with a port",
    "GET http://allowed.moat.test:8080/x HTTP/1.1",
    "Connection: close\r\n",
    "allowed.moat.test:8080",
  ],
] as const) {
  test(`${what} with Host: other: the server receives the target's authority as Host`, async () => {
    const before = upstream.seen.length;
    const answer = await raw(`${line}\r\nHost: other.moat.test\r\n${extra}\r\n`);
    assert.match(answer, /^HTTP\/1\.1 (101|200) /, answer);
    assert.equal(upstream.seen.length, before + 1);
    assert.equal(upstream.seen.at(-1)?.headers.host, host);
  });
}
