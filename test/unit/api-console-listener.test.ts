// The loopback console listener is opened by the first `moat console`. Any local user can hold
// every free port of 127.0.0.1 for a while; the login asked for meanwhile fails, and says why,
// but the next one, once a port is free, opens the listener.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server } from "node:net";
import { http } from "../helpers/api-client.ts";
import { apiOnSocket } from "../helpers/api-on-socket.ts";

/** The next listen() on 127.0.0.1 port 0 fails as it does when no port is free. */
function noFreePortOnce(t: { after: (fn: () => void) => void }): void {
  const listen = Server.prototype.listen;
  let failed = false;
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    if (!failed && args[0] === 0 && args[1] === "127.0.0.1") {
      failed = true;
      const err = Object.assign(new Error("listen EADDRINUSE: address already in use 127.0.0.1"), {
        code: "EADDRINUSE",
      });
      process.nextTick(() => this.emit("error", err));
      return this;
    }
    return (listen as (...a: unknown[]) => Server).apply(this, args);
  } as typeof listen;
  t.after(() => {
    Server.prototype.listen = listen;
  });
}

test("a console listener that could not be opened is tried again by the next login link", async (t) => {
  const socketPath = await apiOnSocket(t, "moat-console-listener-");
  noFreePortOnce(t);
  const first = await http({ socketPath }, "POST", "/v1/console/url", "{}");
  const second = await http({ socketPath }, "POST", "/v1/console/url", "{}");
  assert.equal(second.status, 200, `the failure was kept: ${second.body}`);
  assert.match(second.body, /http:\/\/127\.0\.0\.1:\d+\/console\/login#/);
  assert.equal(first.status, 503, first.body);
  assert.match(first.body, /ECONSOLE.*could not be opened.*EADDRINUSE/);
});
