// Getting into the web console: `moat console`'s login link works once, sets an HttpOnly,
// SameSite=Strict session cookie and hands the page its session token in the answer's body
// (never in a cookie, which every port of the host would see); without the cookie the console
// and the API refuse; every API request with the cookie needs the token (reads too), a write
// also the scope; a page from another origin is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";
import { login, mintConsoleUrl, splitUrl } from "../helpers/console-session.ts";
import { SseParser } from "../../web/live/sse.ts";

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-console-"));
  const pipeline = new EventPipeline();
  const logged: string[] = [];
  const modes: string[] = [];
  const control = testControl(pipeline, {
    log: (line) => logged.push(line),
    setMode: (mode, who) => {
      modes.push(`${mode} by ${who}`);
      return { ok: true, generation: 4, errors: [] };
    },
  });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { socketPath, logged, modes };
}

test("a login body is small: a large one is refused before it is read, without a session", async (t) => {
  const { socketPath } = await setUp(t);
  const { port } = splitUrl((await mintConsoleUrl({ socketPath })).url);
  const big = await http(
    { port, headers: { host: `127.0.0.1:${port}` } },
    "POST",
    "/console/session",
    JSON.stringify({ secret: "x".repeat(100_000) }),
  );
  assert.equal(big.status, 413);
  assert.match(big.body, /ETOOLARGE/);
});

test("the login link works once, sets only the HttpOnly session cookie, and never shows its secret in the log", async (t) => {
  const { socketPath, logged } = await setUp(t);
  const minted = await mintConsoleUrl({ socketPath });
  assert.match(minted.url, /^http:\/\/127\.0\.0\.1:\d+\/console\/login#[\w-]{40,}$/);
  assert.deepEqual(minted.scopes, ["read", "events"]);
  const { port, secret } = splitUrl(minted.url);
  const session = await login(port, secret);
  assert.deepEqual(session.setCookie.length, 1, "one cookie: the session's token is no cookie");
  assert.match(
    session.setCookie[0] ?? "",
    /^moat_console=[\w-]+; HttpOnly; Path=\/; SameSite=Strict; Max-Age=28800$/,
  );
  assert.match(session.csrf, /^[\w-]{40,}$/, "the token is in the login answer's body");
  assert.ok(!session.cookie.includes(session.csrf), "the token is in no cookie");

  const again = await http(
    { port, headers: { host: `127.0.0.1:${port}` } },
    "POST",
    "/console/session",
    JSON.stringify({ secret }),
  );
  assert.equal(again.status, 401);
  assert.match(again.body, /unknown, used or expired; run 'moat console'/);
  assert.ok(!logged.some((l) => l.includes(secret)), "the secret is not logged");

  const page = await http(
    { port, headers: { host: `127.0.0.1:${port}`, cookie: session.cookie } },
    "GET",
    "/console/",
  );
  assert.equal(page.status, 200);
  assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
  assert.match(
    String(page.headers["content-security-policy"]),
    /default-src 'none'.*connect-src 'self'/,
  );
  assert.equal(page.headers["referrer-policy"], "no-referrer");
  const script = await http(
    { port, headers: { host: `127.0.0.1:${port}`, cookie: session.cookie } },
    "GET",
    "/console/live.js",
  );
  assert.equal(script.headers["content-type"], "text/javascript; charset=utf-8");
});

test("without the cookie the console and the API refuse; the login page itself loads", async (t) => {
  const { socketPath } = await setUp(t);
  const { port } = splitUrl((await mintConsoleUrl({ socketPath })).url);
  const where = { port, headers: { host: `127.0.0.1:${port}` } };
  const page = await http(where, "GET", "/console/");
  assert.equal(page.status, 401);
  assert.match(page.body, /no console session: run 'moat console'/);
  assert.equal((await http(where, "GET", "/v1/status")).status, 401);
  assert.equal((await http(where, "GET", "/v1/flows/stream")).status, 401);
  const bogus = { port, headers: { host: `127.0.0.1:${port}`, cookie: "moat_console=forged" } };
  assert.equal((await http(bogus, "GET", "/v1/status")).status, 401);
  assert.equal((await http(where, "GET", "/console/login")).status, 200);
});

test("a write needs the CSRF token and the scope; a session has no more than it was minted with", async (t) => {
  const { socketPath, modes } = await setUp(t);
  const readOnly = await mintConsoleUrl({ socketPath });
  const { port, secret } = splitUrl(readOnly.url);
  const reader = await login(port, secret);
  const as = (s: typeof reader, csrf?: string) => ({
    port,
    headers: {
      host: `127.0.0.1:${port}`,
      cookie: s.cookie,
      ...(csrf ? { "x-moat-csrf": csrf } : {}),
    },
  });
  const body = JSON.stringify({ mode: "detect" });
  assert.equal((await http(as(reader, reader.csrf), "GET", "/v1/status")).status, 200);

  const noCsrf = await http(as(reader), "PUT", "/v1/mode", body);
  assert.equal(noCsrf.status, 403);
  assert.match(noCsrf.body, /session's token in the x-moat-csrf header/);
  const noScope = await http(as(reader, reader.csrf), "PUT", "/v1/mode", body);
  assert.equal(noScope.status, 403);
  assert.match(noScope.body, /lacks the scope 'mode'/);

  const writer = await login(
    port,
    splitUrl((await mintConsoleUrl({ socketPath }, ["read", "events", "mode"])).url).secret,
  );
  const wrongCsrf = await http(as(writer, reader.csrf), "PUT", "/v1/mode", body);
  assert.equal(wrongCsrf.status, 403);
  const ok = await http(as(writer, writer.csrf), "PUT", "/v1/mode", body);
  assert.equal(ok.status, 200, ok.body);
  assert.match(modes.join("\n"), /^detect by console session of unix uid \d+ pid \d+$/);

  const fromElsewhere = await http(
    { port, headers: { ...as(writer, writer.csrf).headers, origin: "http://evil.example" } },
    "PUT",
    "/v1/mode",
    body,
  );
  assert.equal(fromElsewhere.status, 403);
  assert.match(fromElsewhere.body, /requests from http:\/\/evil.example are refused/);
  const minting = await http(as(writer, writer.csrf), "POST", "/v1/console/url", "{}");
  assert.equal(minting.status, 403);
});

test("the cookie alone authorises no API request, read or write: the session's token must come too", async (t) => {
  const { socketPath, modes } = await setUp(t);
  const minted = await mintConsoleUrl({ socketPath }, ["read", "events", "mode"]);
  const { port, secret } = splitUrl(minted.url);
  const session = await login(port, secret);
  const withCookie = (token?: string) => ({
    port,
    headers: {
      host: `127.0.0.1:${port}`,
      cookie: session.cookie,
      ...(token ? { "x-moat-csrf": token } : {}),
    },
  });
  // what a page on another port of 127.0.0.1 gets from the browser: the cookie, and no token
  for (const path of ["/v1/status", "/v1/policy", "/v1/flows/stream", "/console/session"]) {
    const r = await http(withCookie(), "GET", path);
    assert.equal(r.status, 403, `GET ${path}: ${r.body}`);
    assert.match(r.body, /ECSRF/);
  }
  const put = await http(withCookie(), "PUT", "/v1/mode", JSON.stringify({ mode: "detect" }));
  assert.equal(put.status, 403);
  const wrong = await http(withCookie("x".repeat(43)), "GET", "/v1/status");
  assert.equal(wrong.status, 403);
  const logout = await http(withCookie(), "DELETE", "/console/session");
  assert.equal(logout.status, 403);
  assert.deepEqual(modes, []);

  // the page, which holds the token, gets through
  const status = await http(withCookie(session.csrf), "GET", "/v1/status");
  assert.equal(status.status, 200, status.body);
  const own = await http(withCookie(session.csrf), "GET", "/console/session");
  assert.equal(own.status, 200, own.body);
  assert.deepEqual((JSON.parse(own.body) as { scopes: string[] }).scopes, [
    "read",
    "events",
    "mode",
  ]);
  const ok = await http(
    withCookie(session.csrf),
    "PUT",
    "/v1/mode",
    JSON.stringify({ mode: "detect" }),
  );
  assert.equal(ok.status, 200, ok.body);
  // the console's pages hold no data: a browser's navigation (which sends no header) loads them
  assert.equal((await http(withCookie(), "GET", "/console/")).status, 200);
});

test("the live view's way to read the flow stream: fetch() with the token, parsed as it arrives", async (t) => {
  const { socketPath } = await setUp(t);
  const { port, secret } = splitUrl((await mintConsoleUrl({ socketPath })).url);
  const session = await login(port, secret);
  const stop = new AbortController();
  t.after(() => stop.abort());
  const res = await fetch(`http://127.0.0.1:${port}/v1/flows/stream`, {
    headers: { cookie: session.cookie, "x-moat-csrf": session.csrf },
    signal: stop.signal,
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const events: { type: string; data: string }[] = [];
  const parser = new SseParser((type, data) => events.push({ type, data }));
  const decoder = new TextDecoder();
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  while (events.length === 0) {
    const { done, value } = await reader.read();
    assert.equal(done, false, "the stream stays open");
    // one byte at a time: events split across chunks come out whole
    for (const byte of value) parser.push(decoder.decode(Uint8Array.of(byte), { stream: true }));
  }
  assert.equal(events[0]?.type, "snapshot");
  assert.deepEqual(Object.keys(JSON.parse(events[0]?.data ?? "{}") as object).sort(), [
    "events",
    "flows",
    "removed",
    "rows",
  ]);
  stop.abort();
});

test("the console listener answers only to its loopback names (no DNS rebinding)", async (t) => {
  const { socketPath } = await setUp(t);
  const { port, secret } = splitUrl((await mintConsoleUrl({ socketPath })).url);
  const r = await http(
    { port, headers: { host: `rebound.example:${port}` } },
    "POST",
    "/console/session",
    JSON.stringify({ secret }),
  );
  assert.equal(r.status, 421);
  // the same listener is reused by the next login
  assert.equal(splitUrl((await mintConsoleUrl({ socketPath })).url).port, port);
});
