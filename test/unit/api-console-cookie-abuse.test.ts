// What another local user can do with the console's cookie: a browser sends 127.0.0.1's cookies
// to every port of that host, and lets a page on any of them set cookies for it. A page served
// on another port therefore gets the session cookie (never the session's token) and can plant a
// cookie of the same name. Neither may sign the console out, lock it out of its connections,
// keep its session alive, or log the browser into another session.
import { test, mock, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { CONSOLE_LIFETIMES } from "../../src/api/console-sessions.ts";
import { CONNECTION_LIMITS } from "../../src/api/connection-guard.ts";
import { http } from "../helpers/api-client.ts";
import { apiOnSocket } from "../helpers/api-on-socket.ts";
import { login, mintConsoleUrl, splitUrl, type Session } from "../helpers/console-session.ts";

async function signedIn(t: TestContext) {
  const socketPath = await apiOnSocket(t, "moat-cookie-");
  const { port, secret } = splitUrl((await mintConsoleUrl({ socketPath })).url);
  const session = await login(port, secret);
  /** A request as the browser sends it: `cookie` is the Cookie header, `token` the page's. */
  const as = (cookie: string, token?: string) => ({
    port,
    headers: {
      host: `127.0.0.1:${port}`,
      cookie,
      ...(token ? { "x-moat-csrf": token } : {}),
    },
  });
  return { port, session, as, socketPath };
}

test("a cookie of the same name planted by a page on another port does not sign the console out", async (t) => {
  const { session, as } = await signedIn(t);
  // `moat_console=planted; Path=/v1` set by that page: the browser sends it first (longer path)
  const both = `moat_console=planted; ${session.cookie}`;
  const status = await http(as(both, session.csrf), "GET", "/v1/status");
  assert.equal(status.status, 200, status.body);
  const own = await http(as(both, session.csrf), "GET", "/console/session");
  assert.equal(own.status, 200, own.body);
  assert.equal((await http(as(both), "GET", "/console/")).status, 200, "the page loads");
  // sign out ends the session the token belongs to
  const out = await http(as(both, session.csrf), "DELETE", "/console/session");
  assert.equal(out.status, 200, out.body);
  assert.equal((await http(as(session.cookie, session.csrf), "GET", "/v1/status")).status, 401);
});

/** `n` connections that each loaded a console page with the cookie alone, kept open. */
async function pageConnections(port: number, cookie: string, n: number): Promise<Socket[]> {
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect(port, "127.0.0.1");
          s.on("error", () => {});
          s.once("data", () => resolve(s));
          s.write(`GET /console/ HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncookie: ${cookie}\r\n\r\n`);
        }),
    ),
  );
  return sockets;
}

test("connections that loaded pages with the cookie alone do not take the session's share", async (t) => {
  const { port, session, as } = await signedIn(t);
  const held = await pageConnections(port, session.cookie, CONNECTION_LIMITS.maxPerPrincipal);
  t.after(() => held.forEach((s) => s.destroy()));
  const r = await http(as(session.cookie, session.csrf), "GET", "/v1/status");
  assert.equal(r.status, 200, r.body);
});

test("the cookie alone does not keep a session in use: it ends an hour after the page's last request", async (t) => {
  mock.timers.enable({ apis: ["Date"], now: Date.now() });
  t.after(() => mock.timers.reset());
  const { port, session, as } = await signedIn(t);
  const minute = 60_000;
  mock.timers.tick(CONSOLE_LIFETIMES.idleMs - 10 * minute);
  // what the other port's page can send: requests refused for want of the token, page loads
  assert.equal((await http(as(session.cookie), "GET", "/v1/status")).status, 403);
  const held = await pageConnections(port, session.cookie, 1);
  t.after(() => held.forEach((s) => s.destroy()));
  mock.timers.tick(11 * minute);
  const r = await http(as(session.cookie, session.csrf), "GET", "/v1/status");
  assert.equal(r.status, 401, `the session outlived an hour unused: ${r.body}`);
});

test("a login from another origin is refused, and the link still works from the console's page", async (t) => {
  const { socketPath } = await signedIn(t);
  const { port, secret } = splitUrl((await mintConsoleUrl({ socketPath })).url);
  const forged = await http(
    {
      port,
      headers: {
        host: `127.0.0.1:${port}`,
        origin: "http://127.0.0.1:8080",
        "content-type": "text/plain",
      },
    },
    "POST",
    "/console/session",
    JSON.stringify({ secret }),
  );
  assert.equal(forged.status, 403, forged.body);
  assert.match(forged.body, /EORIGIN/);
  assert.equal(forged.headers["set-cookie"], undefined);
  const own: Session = await login(port, secret);
  assert.ok(own.csrf);
});
