// Clients holding a valid token but abusing it: none may grow the daemon's memory without bound,
// take every connection or subscription slot, or lock out another token or root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUDIT_LIMITS, REQUEST_LIMITS, startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import { SUBSCRIBER_LIMITS } from "../../src/api/subscribers.ts";
import { BODY_LIMITS } from "../../src/api/json.ts";
import { ConsoleSessions } from "../../src/api/console-sessions.ts";
import { HttpError } from "../../src/api/errors.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";

const TOK = {
  ev: "events-token-0123456789abcdef",
  rd: "read-token-0123456789abcdef00",
  met: "metrics-token-0123456789abcde",
  adm: "admin-token-0123456789abcdef0",
};

async function setUp(
  t: { after: (fn: () => Promise<void> | void) => void },
  parts: Partial<ApiControl> = {},
) {
  const dir = mkdtempSync(join(tmpdir(), "moat-abuse-"));
  const tokenFile = join(dir, "tokens");
  writeFileSync(
    tokenFile,
    `ev events ${TOK.ev}\nrd read ${TOK.rd}\nmet metrics ${TOK.met}\nadm all ${TOK.adm}\n`,
    { mode: 0o600 },
  );
  const pipeline = new EventPipeline();
  const audited: string[] = [];
  const control = testControl(pipeline, { audit: (l) => audited.push(l), ...parts });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [
    { listen: "127.0.0.1:0", tokenFile },
    { listen: `unix:${socketPath}` },
  ]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { port: Number(api.addresses[0]?.split(":").at(-1)), socketPath, audited };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WebSocket on /v1/events/stream, once the server answered 101. */
async function webSocket(port: number, token: string): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write(
    "GET /v1/events/stream HTTP/1.1\r\nhost: moat\r\nconnection: Upgrade\r\nupgrade: websocket\r\n" +
      "sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      `authorization: Bearer ${token}\r\n\r\n`,
  );
  let text = "";
  await new Promise<void>((resolve, reject) => {
    const on = (d: Buffer) => {
      text += d.toString("latin1");
      if (!text.includes("\r\n\r\n")) return;
      socket.off("data", on);
      if (/^HTTP\/1\.1 101 /.test(text)) resolve();
      else reject(new Error(text));
    };
    socket.on("data", on);
  });
  return socket;
}

/** `n` masked ping frames of 125 bytes each, back to back. */
function pings(n: number): Buffer {
  const one = Buffer.alloc(2 + 4 + 125);
  one[0] = 0x89;
  one[1] = 0x80 | 125;
  return Buffer.concat(Array<Buffer>(n).fill(one));
}

const closed = (s: Socket) =>
  new Promise<void>((r) => (s.destroyed ? r() : s.once("close", () => r())));

test("a WebSocket client that pings and never reads is dropped before its pongs pile up", async (t) => {
  const { port } = await setUp(t);
  const socket = await webSocket(port, TOK.ev);
  t.after(() => socket.destroy());
  socket.pause();
  const batch = pings(400);
  let sent = 0;
  const pump = setInterval(() => {
    if (socket.destroyed) return;
    socket.write(batch);
    sent += batch.length;
  }, 2);
  t.after(() => clearInterval(pump));
  const outcome = await Promise.race([
    closed(socket).then(() => "closed"),
    sleep(15_000).then(() => "still open"),
  ]);
  clearInterval(pump);
  assert.equal(outcome, "closed", `after ${sent} bytes of pings`);
  // and it was not dropped at once (a burst is fine): it sent far more than its bound
  assert.ok(sent > SUBSCRIBER_LIMITS.maxBufferedBytes, `dropped after only ${sent} bytes`);
});

test("a WebSocket burst of small complete frames over 64 KiB is answered, not cut", async (t) => {
  const { port } = await setUp(t);
  const socket = await webSocket(port, TOK.ev);
  t.after(() => socket.destroy());
  const n = 2000;
  let got = 0;
  socket.on("data", (d: Buffer) => (got += d.length));
  socket.write(pings(n));
  const pongBytes = n * (2 + 125);
  const outcome = await Promise.race([
    closed(socket).then(() => "closed"),
    (async () => {
      while (got < pongBytes) await sleep(20);
      return "answered";
    })(),
    sleep(10_000).then(() => "timeout"),
  ]);
  assert.equal(outcome, "answered", `got ${got} of ${pongBytes} bytes of pongs`);
});

/** Opens up to `n` SSE subscriptions with `token`; returns how many the server took and a closer. */
async function subscriptions(port: number, token: string, path: string, n: number) {
  const sockets: Socket[] = [];
  const statuses = await Promise.all(
    Array.from({ length: n }, () => {
      const s = connect(port, "127.0.0.1");
      sockets.push(s);
      s.on("error", () => {});
      s.write(`GET ${path} HTTP/1.1\r\nhost: moat\r\nauthorization: Bearer ${token}\r\n\r\n`);
      return new Promise<number>((resolve) => {
        s.once("data", (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1])));
        s.once("close", () => resolve(0));
      });
    }),
  );
  return {
    open: statuses.filter((s) => s === 200).length,
    statuses,
    close: () => sockets.forEach((s) => s.destroy()),
  };
}

test("one token holding every connection with live streams leaves room for another token", async (t) => {
  const { port } = await setUp(t);
  const subs = await subscriptions(port, TOK.ev, "/v1/events/stream", 256);
  t.after(subs.close);
  assert.ok(subs.open > 0 && subs.open <= 64, `the events token holds ${subs.open} streams`);
  assert.ok(subs.statuses.includes(429), "past its share, the events token is told 429");
  assert.equal((await http({ port, token: TOK.adm }, "GET", "/v1/status")).status, 200);
  assert.equal((await http({ port, token: TOK.adm }, "PUT", "/v1/mode", "{}")).status, 400);
});

test("a refused request (wrong method, lacking scope) does not make its connection authenticated", async (t) => {
  const { port } = await setUp(t);
  const open: Socket[] = [];
  for (const head of [
    `POST /metrics HTTP/1.1\r\nhost: moat\r\nauthorization: Bearer ${TOK.met}\r\ncontent-length: 100000000\r\n\r\n`,
    `PUT /v1/policy HTTP/1.1\r\nhost: moat\r\nauthorization: Bearer ${TOK.met}\r\ncontent-length: 100000000\r\n\r\n`,
  ]) {
    const s = connect(port, "127.0.0.1");
    s.on("error", () => {});
    s.write(head);
    open.push(s);
  }
  const trickle = setInterval(() => open.forEach((s) => s.destroyed || s.write("x")), 500);
  t.after(() => {
    clearInterval(trickle);
    open.forEach((s) => s.destroy());
  });
  const outcome = await Promise.race([
    Promise.all(open.map(closed)).then(() => "closed"),
    sleep(9000).then(() => "still open"),
  ]);
  assert.equal(outcome, "closed", "the pre-authentication timeout closed both");
});

test("an authorised request whose body trickles in is cut after the request timeout", async (t) => {
  const saved = { ...REQUEST_LIMITS };
  REQUEST_LIMITS.requestTimeoutMs = 1500;
  t.after(() => Object.assign(REQUEST_LIMITS, saved));
  const { port } = await setUp(t);
  const s = connect(port, "127.0.0.1");
  s.on("error", () => {});
  let text = "";
  s.on("data", (d: Buffer) => (text += d.toString()));
  s.write(
    `PUT /v1/policy HTTP/1.1\r\nhost: moat\r\nauthorization: Bearer ${TOK.adm}\r\ncontent-length: 100000\r\n\r\n`,
  );
  const trickle = setInterval(() => s.destroyed || s.write("x"), 200);
  t.after(() => {
    clearInterval(trickle);
    s.destroy();
  });
  const outcome = await Promise.race([
    closed(s).then(() => "closed"),
    sleep(8000).then(() => "still open"),
  ]);
  assert.equal(outcome, "closed");
  assert.match(text, /^HTTP\/1\.1 408 /);
});

const ok = () => ({ ok: true, generation: 1, errors: [] }) as never;

test("a small-JSON endpoint refuses a large body (413); the policy endpoints take one", async (t) => {
  const { port } = await setUp(t, { setMode: ok, validate: ok });
  const pad = "x".repeat(100 << 10);
  const mode = await http(
    { port, token: TOK.adm },
    "PUT",
    "/v1/mode",
    `{"mode":"prevent","pad":"${pad}"}`,
  );
  assert.equal(mode.status, 413, mode.body);
  const validate = await http(
    { port, token: TOK.adm },
    "POST",
    "/v1/policy/validate",
    `# ${pad}\n`,
  );
  assert.equal(validate.status, 200, validate.body);
});

test("deeply nested JSON is refused (400) before it is parsed", async (t) => {
  let replays = 0;
  const { port } = await setUp(t, {
    replay: async () => {
      replays++;
      return null;
    },
  });
  const depth = 1_000_000;
  const bomb = `{"text":"x","pad":${"[".repeat(depth)}${"]".repeat(depth)}}`;
  const started = Date.now();
  const r = await http({ port, token: TOK.adm }, "POST", "/v1/policy/replay", bomb);
  assert.equal(r.status, 400, r.body);
  assert.match(r.body, /EDEPTH/);
  assert.equal(replays, 0);
  assert.ok(Date.now() - started < 5000);
  // brackets inside strings are not nesting
  const fine = await http(
    { port, token: TOK.adm },
    "POST",
    "/v1/policy/replay",
    `{"text":"${"[".repeat(1000)}"}`,
  );
  assert.equal(fine.status, 404, fine.body); // no history in this test: past the parse
});

test("a console URL's scopes must be an array of strings (400, never 500)", async (t) => {
  const { port } = await setUp(t);
  for (const body of [
    `{"scopes":${"[".repeat(5000)}${"]".repeat(5000)}}`,
    `{"scopes":[["read"]]}`,
    `{"scopes":[{"toString":1}]}`,
    `{"scopes":"read"}`,
  ]) {
    const r = await http({ port, token: TOK.adm }, "POST", "/v1/console/url", body);
    assert.equal(r.status, 400, `${body.slice(0, 40)}: ${r.body}`);
  }
});

test("bodies in flight at once share one budget: past it a request is refused (503)", async (t) => {
  const saved = { ...BODY_LIMITS };
  BODY_LIMITS.inFlightBytes = 1 << 20;
  t.after(() => Object.assign(BODY_LIMITS, saved));
  const { port } = await setUp(t, { validate: ok });
  // one request holds 700 KB of its 900 KB body
  const held = connect(port, "127.0.0.1");
  held.on("error", () => {});
  t.after(() => held.destroy());
  let heldText = "";
  held.on("data", (d: Buffer) => (heldText += d.toString()));
  const size = 900 << 10;
  held.write(
    `POST /v1/policy/validate HTTP/1.1\r\nhost: moat\r\nauthorization: Bearer ${TOK.adm}\r\n` +
      `content-length: ${size}\r\nconnection: close\r\n\r\n`,
  );
  held.write("#".repeat(700 << 10));
  await sleep(300);
  const other = await http(
    { port, token: TOK.adm },
    "POST",
    "/v1/policy/validate",
    "#".repeat(size),
  );
  assert.equal(other.status, 503, other.body);
  held.write("#".repeat(size - (700 << 10)));
  await closed(held);
  assert.match(heldText, /^HTTP\/1\.1 200 /);
  // once it is done, the budget is free again
  const after = await http(
    { port, token: TOK.adm },
    "POST",
    "/v1/policy/validate",
    "#".repeat(size),
  );
  assert.equal(after.status, 200, after.body);
});

test("one token cannot take every flow-stream slot; another token and root still subscribe", async (t) => {
  const { port, socketPath } = await setUp(t);
  const subs = await subscriptions(port, TOK.ev, "/v1/flows/stream", 64);
  t.after(subs.close);
  assert.ok(subs.open > 0 && subs.open < 64, `the events token holds ${subs.open} flow streams`);
  const admin = await subscriptions(port, TOK.adm, "/v1/flows/stream", 1);
  t.after(admin.close);
  assert.equal(admin.open, 1, `admin: ${admin.statuses.join(",")}`);
  const root = await new Promise<number>((resolve) => {
    const s = connect(socketPath);
    t.after(() => s.destroy());
    s.write("GET /v1/flows/stream HTTP/1.1\r\nhost: moat\r\n\r\n");
    s.once("data", (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1])));
  });
  assert.equal(root, 200);
});

test("a read token minting console links neither voids root's links nor ends root's sessions", async (t) => {
  const { port, socketPath } = await setUp(t);
  const sessions = new ConsoleSessions();
  t.after(() => sessions.close());
  const rootSession = sessions.exchange(
    sessions.mint(new Set(["read"]), "unix uid 0 pid 1", "unix").secret,
  );
  const rootLink = sessions.mint(new Set(["read"]), "unix uid 0 pid 2", "unix");
  let refused = 0;
  for (let i = 0; i < 200; i++) {
    try {
      const link = sessions.mint(new Set(["read"]), "token rd", "token rd");
      if (i % 2) sessions.exchange(link.secret);
    } catch (err) {
      assert.ok(err instanceof HttpError && (err.status === 429 || err.status === 503));
      refused++;
    }
  }
  for (let i = 0; i < 200; i++) {
    try {
      sessions.mint(new Set(["read"]), `token t${i}`, `token t${i}`);
    } catch (err) {
      assert.ok(err instanceof HttpError && (err.status === 429 || err.status === 503));
      refused++;
    }
  }
  assert.ok(refused > 0, "some mints were refused");
  assert.ok(rootSession && sessions.lookup(rootSession.id), "root's session is alive");
  assert.ok(sessions.exchange(rootLink.secret), "root's unused link still works");

  // over the API: the read token's mints stop at its quota; root's still succeed
  const statuses = new Set<number>();
  for (let i = 0; i < 80; i++)
    statuses.add(
      (await http({ port, token: TOK.rd }, "POST", "/v1/console/url", `{"scopes":["read"]}`))
        .status,
    );
  assert.deepEqual([...statuses].sort(), [200, 429]);
  const root = await http({ socketPath }, "POST", "/v1/console/url", '{"scopes":["read"]}');
  assert.equal(root.status, 200, root.body);
});

test("repeated refusals of one route by one token are audited once, then counted in one line", async (t) => {
  const saved = { ...AUDIT_LIMITS };
  AUDIT_LIMITS.refusalIntervalMs = 500;
  t.after(() => Object.assign(AUDIT_LIMITS, saved));
  const { port, audited } = await setUp(t);
  for (let i = 0; i < 30; i++)
    assert.equal(
      (await http({ port, token: TOK.met }, "DELETE", "/v1/decisions?id=x")).status,
      403,
    );
  assert.equal((await http({ port, token: TOK.met }, "PUT", "/v1/mode", "{}")).status, 403);
  const refused = () => audited.filter((l) => l.includes("REFUSED"));
  assert.equal(refused().length, 2, refused().join("\n"));
  await sleep(800);
  assert.equal(refused().length, 3, refused().join("\n"));
  assert.match(refused()[2]!, /29 more refusals of DELETE \/v1\/decisions by token met/);
});
