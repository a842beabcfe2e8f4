// Hostile clients on the TCP API: a local user (nobody) holding hundreds of idle connections
// neither exhausts the daemon's descriptors nor locks out an authorised client; the idle ones
// are closed (the oldest unauthenticated first when the listener is full, every one after the
// pre-authentication timeout), and a 401 closes its connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { spawn } from "node:child_process";
import { startApi } from "../../src/api/server.ts";
import { CONNECTION_LIMITS } from "../../src/api/connection-guard.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

const TOKEN = "root-token-0123456789abcdef";
const IDLE = 900;

const openFds = () => readdirSync("/proc/self/fd").length;

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-hostile-"));
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, `root read,events ${TOKEN}\n`, { mode: 0o600 });
  const pipeline = new EventPipeline();
  const control = testControl(pipeline);
  const api = await startApi(control, [{ listen: "127.0.0.1:0", tokenFile }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { port: Number(api.addresses[0]?.split(":").at(-1)) };
}

test("900 idle connections from nobody: an authorised request still succeeds, the idle ones are closed", async (t) => {
  const { port } = await setUp(t);
  const before = openFds();
  const child = spawn("setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/idle-clients.ts`,
    "127.0.0.1",
    String(port),
    String(IDLE),
  ]);
  t.after(() => child.kill("SIGKILL"));
  let closed = 0;
  let opened = -1;
  const lines = createInterface({ input: child.stdout });
  const progress = new Set<() => void>();
  lines.on("line", (line) => {
    const m = /^(open|closed) (\d+)$/.exec(line);
    if (m?.[1] === "open") opened = Number(m[2]);
    if (m?.[1] === "closed") closed = Number(m[2]);
    for (const f of progress) f();
  });
  const until = (what: string, ok: () => boolean, ms: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
      const check = () => {
        if (!ok()) return;
        clearTimeout(timer);
        progress.delete(check);
        resolve();
      };
      progress.add(check);
      check();
    });
  await until("every idle client connected", () => opened >= 0, 20_000);
  assert.equal(opened, IDLE, "the kernel accepted every connection");

  // while they are held: the daemon's descriptors stay bounded and root gets in
  const held = openFds() - before;
  assert.ok(
    held <= CONNECTION_LIMITS.maxConnections + 8,
    `the daemon holds ${held} descriptors for ${IDLE} idle connections`,
  );
  const status = await http({ port, token: TOKEN }, "GET", "/v1/status");
  assert.equal(status.status, 200, "an authorised request succeeds");

  // the pre-authentication timeout closes every idle one
  await until(
    `every idle connection closed (${closed} of ${IDLE})`,
    () => closed === IDLE,
    CONNECTION_LIMITS.preAuthTimeoutMs + 10_000,
  );
  assert.equal((await http({ port, token: TOKEN }, "GET", "/v1/status")).status, 200);
});

test("a request without a valid token gets 401 and its connection is closed", async (t) => {
  const { port } = await setUp(t);
  const socket = connect(port, "127.0.0.1");
  let text = "";
  socket.on("data", (d: Buffer) => (text += d.toString()));
  socket.write(
    "GET /v1/status HTTP/1.1\r\nhost: moat\r\nauthorization: Bearer nope-nope-nope-nope\r\n\r\n",
  );
  await new Promise((resolve) => socket.once("close", resolve));
  assert.match(text, /^HTTP\/1\.1 401 /);
  assert.match(text, /^connection: close\r$/im);
});

test("a WebSocket client that sends an endless frame is disconnected, not buffered", async (t) => {
  const { port } = await setUp(t);
  const socket = connect(port, "127.0.0.1");
  t.after(() => socket.destroy());
  let text = "";
  socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
  socket.write(
    "GET /v1/events/stream HTTP/1.1\r\nhost: moat\r\nconnection: Upgrade\r\nupgrade: websocket\r\n" +
      "sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      `authorization: Bearer ${TOKEN}\r\n\r\n`,
  );
  await new Promise<void>((resolve) => {
    const check = () => (/\r\n\r\n/.test(text) ? resolve() : socket.once("data", check));
    check();
  });
  assert.match(text, /^HTTP\/1\.1 101 /);
  // a masked binary frame that claims 100 MB, sent in 64 KiB pieces
  const head = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0x05, 0xf5, 0xe1, 0x00, 1, 2, 3, 4]);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => {});
  socket.write(head);
  let sent = 0;
  const piece = Buffer.alloc(64 << 10, 0x61);
  const pump = setInterval(() => {
    if (socket.destroyed) return;
    socket.write(piece);
    sent += piece.length;
  }, 1);
  t.after(() => clearInterval(pump));
  const outcome = await Promise.race([
    closed.then(() => "closed"),
    new Promise((r) => setTimeout(() => r("still open"), 10_000)),
  ]);
  clearInterval(pump);
  assert.equal(outcome, "closed", `after ${sent} bytes`);
});
