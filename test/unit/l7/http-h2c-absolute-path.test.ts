// An HTTP/2 `:path` is the path and query only (RFC 9113, 8.3.1): one in absolute form
// (`http://other/x`) names a host of its own, which a server may serve in place of the
// `:authority` moat judged. Such a stream never reaches the server: with an `http` scheme
// Node's HTTP/2 parser resets it (PROTOCOL_ERROR), with any other scheme moat answers 400.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:http2";
import type { L7Relay } from "../../helpers/l7-http-relay.ts";
import { startH2Echo, type Upstream } from "../../helpers/http-echo.ts";
import { startEchoRelay } from "../../helpers/l7-echo-relay.ts";

// the echo server behind the relay, judged by ALLOWED_HOST_POLICY: allowed.moat.test is allowed
// (rule web-allowed), any other HTTP blocked
let upstream: Upstream;
let relay: L7Relay;
let close: () => Promise<void>;
before(async () => ({ upstream, relay, close } = await startEchoRelay(startH2Echo)));
after(() => close());

/** The stream's status, or the error it ended with. */
function status(path: string, scheme = "http"): Promise<number | string> {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${relay.port}`);
    session.on("error", () => {});
    const req = session.request({
      ":method": "GET",
      ":path": path,
      ":scheme": scheme,
      ":authority": "allowed.moat.test",
    });
    let code = 0;
    req.on("response", (h) => (code = Number(h[":status"])));
    req.resume();
    const done = (result: number | string) => {
      session.close();
      resolve(result);
    };
    req.on("end", () => done(code));
    req.on("error", (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    req.end();
  });
}

for (const [scheme, expected] of [
  ["http", "ERR_HTTP2_STREAM_ERROR"],
  ["ftp", 400],
] as const) {
  test(`a :path in absolute form naming another host, scheme ${scheme}: ${expected}, the server never sees it`, async () => {
    const before = upstream.seen.length;
    assert.equal(await status("http://other.moat.test/x", scheme), expected);
    assert.equal(upstream.seen.length, before);
  });
}

test("a :path in origin form with the allowed :authority goes on", async () => {
  const before = upstream.seen.length;
  assert.equal(await status("/x"), 200);
  assert.equal(upstream.seen.length, before + 1);
});
