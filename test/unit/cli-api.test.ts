// The CLI against an API server (stub daemon behind it): TLS with a token file, `moat status`,
// `moat events`, and one `moat top --once` frame; plus the frame renderer on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { historySink } from "../../src/observe/history/sink.ts";
import { emptyTop, renderTop, tally } from "../../src/cli/top-view.ts";
import { fakeEvent, fakeSnapshot } from "../helpers/events.ts";
import { MOAT } from "../helpers/paths.ts";

const run = promisify(execFile);

test("top renders the busiest remotes, processes and rules from events", () => {
  const data = emptyTop(Date.parse("2026-11-22T10:00:00Z"));
  const ev = (ip: string, type: "blocked" | "detected", rule = "default") =>
    fakeEvent({ type, verdict: type, rule, remote: { ip, port: 1 } });
  for (let i = 0; i < 3; i++) tally(data, ev("203.0.113.9", "blocked"));
  tally(data, ev("198.51.100.1", "detected", "web"));
  tally(data, fakeEvent({ type: "allowed", verdict: "allowed" }));
  const frame = renderTop(data, { now: Date.parse("2026-11-22T10:00:30Z"), width: 50, rows: 5 });
  assert.deepEqual(frame, [
    "moat top: 4 blocked/detected connections in the last 30 s",
    "",
    "REMOTE                          BLOCKED   DETECTED",
    "203.0.113.9                           3          0",
    "198.51.100.1                          0          1",
    "",
    "PROCESS                         BLOCKED   DETECTED",
    "(unknown)                             3          1",
    "",
    "RULE                            BLOCKED   DETECTED",
    "default                               3          0",
    "web                                   0          1",
  ]);
});

test("status, events and top --once over TLS with a token file", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cli-api-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [cert, key, tokenFile] = ["cert.pem", "key.pem", "token"].map((f) => join(dir, f)) as [
    string,
    string,
    string,
  ];
  const ssl = spawnSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]);
  assert.equal(ssl.status, 0, ssl.stderr.toString());
  writeFileSync(tokenFile, "ops cli-test-token-0123456789abcdef\n", { mode: 0o600 });

  const pipeline = new EventPipeline();
  const store = new HistoryStore(join(dir, "h.db"));
  pipeline.add(historySink(store, () => {}));
  const control = {
    snapshot: () => fakeSnapshot(pipeline),
    queryHistory: (q) => store.query(q),
    log: () => {},
  } as Partial<ApiControl> as ApiControl;
  const api = await startApi(control, [{ listen: "127.0.0.1:0", tokenFile, tls: { cert, key } }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
  });
  const port = api.addresses[0]?.split(":").at(-1);
  const target = ["--api", `https://127.0.0.1:${port}`, "--token-file", tokenFile, "--ca", cert];

  for (const ip of ["203.0.113.9", "203.0.113.9", "192.0.2.7"])
    pipeline.push(fakeEvent({ remote: { ip, port: 4444 } }));
  await pipeline.flush();

  const status = await run(MOAT, ["status", ...target]);
  assert.match(status.stdout, /^mode: prevent$/m);
  assert.match(status.stdout, /^attached: eth0 xdp native$/m);
  assert.match(status.stdout, /^sinks: history 3 delivered, 0 dropped$/m);

  const events = await run(MOAT, ["events", "--remote", "192.0.2.0/24", ...target]);
  assert.equal(
    events.stdout.trim().replace(/^\S+ /, ""),
    "BLOCKED ingress tcp 192.0.2.7:4444 -> 10.0.0.1:22 on eth0 by rule default",
  );

  const top = await run(MOAT, ["top", "--once", ...target]);
  assert.match(top.stdout, /^moat top: 3 blocked\/detected connections/);
  assert.match(top.stdout, /^203\.0\.113\.9 +2 +0$/m);

  const noToken = await run(MOAT, [
    "status",
    "--api",
    `https://127.0.0.1:${port}`,
    "--ca",
    cert,
  ]).catch((err: { code: number; stderr: string }) => err);
  assert.equal((noToken as { code: number }).code, 1);
  assert.equal(
    (noToken as { stderr: string }).stderr.trim(),
    "moat: a valid bearer token is required",
  );
  assert.equal(api.counters.unauthorized, 1);
});
