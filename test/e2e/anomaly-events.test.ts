// Anomaly events from real traffic: a client in the namespace lab uses one destination, then,
// once its identity is learned, a port it never used; the daemon reports a type "anomaly" event
// (new_destination) that reaches the audit log and the API, and `moat anomalies accept` keeps
// the acceptance where a restart finds it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { MOAT } from "../helpers/paths.ts";
import { until } from "../helpers/stored-events.ts";
import type { AnomalyView } from "../../src/api/index.ts";

test("a new destination of a learned process is an anomaly event in the audit log and the API", async (t) => {
  const cg = cgroupForTest(t, "anomaly");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(
    cg,
    "anomaly events",
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} }, history: { flow_interval: 2s } }
# learned after a second, so a test need not wait a day
anomaly: { min_baseline: 1s, detectors: [new_destination, volume, beacon] }
rules:
  # a process rule: the socket hooks keep every connection's owner (docs/observability.md)
  - { name: no-wget, direction: egress, action: block, process: { name: [wget] } }
  - { name: web-out, direction: egress, action: allow, layer4: { protocol: tcp, port: [80, 8080] } }
`,
    ["tcp:80,8080"],
  );
  const api = ["--api", `unix:${lab.apiSocket}`];
  // one process: port 80 (its baseline), then port 8080 (new to it)
  const client = runIn(lab.b, dir, [
    "python3",
    "-c",
    `import socket, time
def visit(port):
    s = socket.create_connection(("${lab.v4.a}", port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    s.settimeout(1)
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
visit(80)
time.sleep(2.5)
visit(8080)
time.sleep(1)
print("done")`,
  ]);
  assert.equal(client.stdout.trim(), "done", client.stderr);

  const line = await until("the anomaly in the audit log", () =>
    lab
      .audit()
      .split("\n")
      .find((l) => l.includes("ANOMALY new_destination")),
  );
  assert.match(line, /python3.*first connection to .* tcp\/8080/);

  const view = (): AnomalyView => {
    const r = spawnSync(MOAT, ["anomalies", "--json", ...api], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as AnomalyView;
  };
  const listed = view().anomalies.map((a) => a.event);
  assert.equal(listed.length, 1, JSON.stringify(listed));
  const event = listed[0];
  assert.equal(event?.type, "anomaly");
  assert.equal(event?.rule, "anomaly:new_destination");
  assert.equal(event?.remote.port, 8080);
  const a = event?.anomaly;
  assert.equal(a?.kind, "new_destination");
  assert.match(a?.identity.exe ?? "", /python3/);
  assert.equal(a?.key, `${lab.v4.a.split(".").slice(0, 3).join(".")}.0/24 tcp/8080`);
  assert.equal(a?.baseline.knownDestinations, 1);
  assert.equal(a?.samples[0]?.port, 8080);

  const accept = spawnSync(MOAT, ["anomalies", "accept", a?.id ?? "", ...api], {
    encoding: "utf8",
  });
  assert.equal(accept.status, 0, accept.stderr);
  assert.match(accept.stdout, /^accepted [0-9a-f]{12} as normal: new_destination/);
  assert.deepEqual(
    view().accepted.map((x) => x.id),
    [a?.id],
  );
  // kept where the next daemon reads it
  const state = readFileSync(join(lab.dir, "anomaly-state.json"), "utf8");
  assert.ok(state.includes(a?.id ?? "?"));
  await lab.auditHas(/anomaly [0-9a-f]{12} \(new_destination .*\) accepted as normal by/);
});
