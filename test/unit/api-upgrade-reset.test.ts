// A client that asks for a WebSocket and resets its connection before moat's refusal is written
// (no token, a wrong path): the write fails, and the daemon's process must not end with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { NODE, ROOT } from "../helpers/paths.ts";

// the API in a child process of its own: an uncaught error ends that process, not the test's
const SERVER = `
import { startApi } from "${ROOT}src/api/server.ts";
import { EventPipeline } from "${ROOT}src/observe/pipeline.ts";
import { testControl } from "${ROOT}test/helpers/api-control.ts";
import { writeFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
const dir = mkdtempSync(join(tmpdir(), "moat-upgrade-"));
const tokenFile = join(dir, "tokens");
writeFileSync(tokenFile, "root read tok-0123456789abcdef0123\\n", { mode: 0o600 });
const api = await startApi(testControl(new EventPipeline()), [{ listen: "127.0.0.1:0", tokenFile }]);
console.log(api.addresses[0]);
`;

// python resets the connection (SO_LINGER 0) right after its request, many times
const CLIENT = `
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
for path in ["/nope", "/v1/events/stream"] * 100:
    s = socket.create_connection((host, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    req = ("GET %s HTTP/1.1\\r\\nHost: %s:%d\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n") % (path, host, port)
    s.sendall(req.encode())
    s.close()
`;

test("WebSocket upgrades refused to clients that reset at once leave the API serving", async (t) => {
  const server = spawn(
    NODE,
    ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", SERVER],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  server.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let ended = false;
  server.once("exit", () => (ended = true));
  t.after(() => server.kill("SIGKILL"));
  const address = await new Promise<string>((resolve, reject) => {
    server.stdout.once("data", (d: Buffer) => resolve(d.toString().trim()));
    server.once("exit", () => reject(new Error(`the API did not start: ${stderr}`)));
  });
  const [host = "", port = ""] = address.split(/:(?=\d+$)/);
  const client = spawn("python3", ["-c", CLIENT, host, port], { stdio: "inherit" });
  await new Promise((resolve) => client.once("exit", resolve));
  // still serving: a plain request gets its answer
  const res = await fetch(`http://${address}/v1/status`).catch((err: Error) => err);
  assert.ok(!ended, `the API's process ended: ${stderr}`);
  assert.ok(res instanceof Response && res.status === 401, `status request: ${String(res)}`);
});
