// Anomaly baselines rebuilt from the roll-ups at start: the history holds a week of a client's
// hourly roll-ups (port 80) and there is no anomaly state file (a first start with an existing
// history, or a lost state file); the daemon rebuilds the baselines from the roll-ups, says so,
// and the client, learned from that week (min_baseline 1 day), is reported at once for a port it
// never used, where a daemon starting from zero would still be learning it for a day.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { startMoatLab, startPeerServers } from "../helpers/moat-lab.ts";
import { until } from "../helpers/stored-events.ts";
import { fakeEvent } from "../helpers/events.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import type { FlowSummary } from "../../src/observe/flows/record.ts";

const HOUR = 3_600_000;

test("a start without the anomaly state rebuilds the baselines from the roll-ups", async (t) => {
  const cg = cgroupForTest(t, "rebuild");
  const { cgroup, dir } = cg;
  const python = realpathSync("/usr/bin/python3");
  const state = mkdtempSync(join(tmpdir(), "moat-rebuild-"));
  cg.onClose(() => rmSync(state, { recursive: true, force: true }));
  const historyPath = join(state, "history.db");
  const lab = await startMoatLab(
    "anomaly rebuild",
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} }, history: { flow_interval: 2s } }
anomaly: { min_baseline: 1d, detectors: [new_destination] }
rules:
  # a process rule: the socket hooks keep every connection's owner (docs/observability.md)
  - { name: no-wget, direction: egress, action: block, process: { name: [wget] } }
  - { name: web-out, direction: egress, action: allow, layer4: { protocol: tcp, port: [80, 8080] } }
`,
    [],
    {
      // a week of the client's hourly roll-ups, written as the daemon writes them
      beforeDaemon: (l) => {
        const store = new HistoryStore(historyPath);
        const now = Date.now();
        const summaries: FlowSummary[] = [];
        for (let t0 = now - 7 * 24 * HOUR; t0 < now - HOUR; t0 += HOUR)
          summaries.push({
            connection: fakeEvent({
              type: "allowed",
              verdict: "allowed",
              rule: "web-out",
              direction: "egress",
              local: { ip: l.v4.b, port: 40000 },
              remote: { ip: l.v4.a, port: 80 },
              process: { pid: 1, name: "python3", path: python, user: 0, cgroup, container: null },
              hook: "connect",
            }),
            connections: 3,
            closed: 3,
            packets: 30,
            bytes: 3000,
            durationMsSum: 300,
            durationMsMax: 100,
            firstMs: t0,
            lastMs: t0 + 1000,
          });
        store.insertFlows(summaries);
        store.close();
        return Promise.resolve(["--history", historyPath]);
      },
    },
  );
  cg.onClose(() => lab.close());
  const peer = await startPeerServers(lab, ["tcp:80,8080"]);
  cg.onClose(() => peer.kill());

  await lab.daemon.waitFor(
    /^anomaly baselines rebuilt from the roll-ups: 1 identities from \d+ rows/,
  );

  // the learned client: port 80 is its usual, 8080 is new to it
  const client = runIn(lab.b, dir, [
    "/usr/bin/python3",
    "-c",
    // each connection held past a flow scan, so its record names the live executable
    `import socket, time
for port in (80, 8080):
    s = socket.create_connection(("${lab.v4.a}", port), timeout=5)
    time.sleep(3)
    s.close()
time.sleep(3)
print("done")`,
  ]);
  assert.equal(client.stdout.trim(), "done", client.stderr);
  const lines = await until("the anomaly in the audit log", () => {
    const found = lab
      .audit()
      .split("\n")
      .filter((l) => l.includes("ANOMALY new_destination"));
    return found.length ? found : undefined;
  });
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0] ?? "", /python3.*first connection to .* tcp\/8080/);
});
