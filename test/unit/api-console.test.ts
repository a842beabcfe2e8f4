// Getting into the web console: `moat console`'s login link works once and sets an HttpOnly,
// SameSite=Strict session cookie; without the cookie the console and the API refuse; a write
// needs the session's CSRF token and the scope; a page from another origin is refused.
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

test("the login link works once, sets the session cookies, and never shows its secret in the log", async (t) => {
  const { socketPath, logged } = await setUp(t);
  const minted = await mintConsoleUrl({ socketPath });
  assert.match(minted.url, /^http:\/\/127\.0\.0\.1:\d+\/console\/login#[\w-]{40,}$/);
  assert.deepEqual(minted.scopes, ["read", "events"]);
  const { port, secret } = splitUrl(minted.url);
  const session = await login(port, secret);
  const [sessionCookie, csrfCookie] = session.setCookie;
  assert.match(
    sessionCookie ?? "",
    /^moat_console=[\w-]+; HttpOnly; Path=\/; SameSite=Strict; Max-Age=28800$/,
  );
  assert.match(csrfCookie ?? "", /^moat_csrf=[\w-]+; Path=\/; SameSite=Strict/);
  assert.doesNotMatch(csrfCookie ?? "", /HttpOnly/);

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
  assert.equal((await http(as(reader), "GET", "/v1/status")).status, 200);

  const noCsrf = await http(as(reader), "PUT", "/v1/mode", body);
  assert.equal(noCsrf.status, 403);
  assert.match(noCsrf.body, /CSRF token in the x-moat-csrf header/);
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
