// A real Prometheus (Debian's) scrapes moat's /metrics over the API's TCP listener with a bearer
// token from a credentials file, and its query API returns moat's values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { fakeEvent, fakeSnapshot } from "../helpers/events.ts";
import { freePort } from "../helpers/ports.ts";

async function query(port: number, expr: string): Promise<string | undefined> {
  try {
    const res = await fetch(
      `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`,
    );
    const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
    return body.data?.result?.[0]?.value[1];
  } catch {
    return undefined; // not up yet
  }
}

test("Prometheus scrapes /metrics with a token and answers queries for moat_ metrics", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-prom-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "prometheus-scrape-token-0123456789\n", { mode: 0o600 });

  const pipeline = new EventPipeline();
  pipeline.add({ name: "audit", write() {}, close() {} });
  for (let i = 0; i < 3; i++) pipeline.push(fakeEvent());
  const control = {
    snapshot: () => fakeSnapshot(pipeline),
    log: () => {},
  } as unknown as ApiControl;
  const api = await startApi(control, [{ listen: "127.0.0.1:0", tokenFile }]);
  t.after(() => api.close());
  const apiPort = Number(api.addresses[0]?.split(":").at(-1));

  const promPort = await freePort(); // Prometheus cannot listen on port 0
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: moat
    authorization: { type: Bearer, credentials_file: ${tokenFile} }
    static_configs: [{ targets: ["127.0.0.1:${apiPort}"] }]
`,
  );
  const prometheus = spawn(
    "/usr/bin/prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  prometheus.stderr.on("data", (c: Buffer) => (log += c.toString()));
  t.after(() => {
    if (prometheus.pid) process.kill(prometheus.pid, "SIGKILL");
  });

  const deadline = Date.now() + 30_000;
  let connections: string | undefined;
  while (Date.now() < deadline) {
    connections = await query(promPort, 'moat_rule_connections_total{rule="ssh"}');
    if (connections !== undefined) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(connections, "2", `Prometheus never saw moat's metric; its log:\n${log}`);
  assert.equal(await query(promPort, 'moat_events_total{type="blocked"}'), "3");
  assert.equal(await query(promPort, 'moat_datapath_packets_total{counter="drop"}'), "7");
  assert.equal(await query(promPort, 'moat_sink_delivered_events_total{sink="audit"}'), "3");
  assert.equal(await query(promPort, 'up{job="moat"}'), "1");
  assert.equal(api.counters.unauthorized, 0, "every scrape carried the token");
});
