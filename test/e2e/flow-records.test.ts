// Flow records in the namespace lab: allowed connections of real clients (curl, nc), which leave
// no event, appear in the history as "flow" summaries with their process, bytes and verdict; a
// long connection gets periodic records while it lives; `moat stats --json` shows the roll-up;
// the audit log and the event listing stay decisions only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { MOAT } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { StatsPage } from "../../src/observe/index.ts";

const SIZE = 300_000;

test("allowed connections leave flow records, summaries and statistics", async (t) => {
  const cg = cgroupForTest(t, "flows");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(
    cg,
    "flow records",
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} }, history: { flow_interval: 2s } }
rules:
  # a process rule: the socket hooks keep every connection's owner (docs/observability.md)
  - { name: no-wget, direction: egress, action: block, process: { name: [wget] } }
  - { name: web-out, direction: egress, action: allow, layer4: { protocol: tcp, port: [80, 8080] } }
`,
    ["tcp:80,8080"],
  );
  const api = ["--api", `unix:${lab.apiSocket}`];
  const flows = (): MoatEvent[] => {
    const r = spawnSync(MOAT, ["events", "--json", "--type", "flow", "--limit", "1000", ...api], {
      encoding: "utf8",
      timeout: 20_000,
    });
    return r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as MoatEvent);
  };
  const toPort = (port: number) => (e: MoatEvent) =>
    e.remote.ip === lab.v4.a && e.remote.port === port;

  await t.test("a download's bytes are in its flow record, with curl as its process", async () => {
    const r = runIn(lab.b, dir, [
      "curl",
      "-sS",
      "--max-time",
      "5",
      "-o",
      "/dev/null",
      "-w",
      "%{size_download}",
      `http://${lab.v4.a}/stream/${SIZE}`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, String(SIZE));
    const record = await until("the download's flow record", () => flows().find(toPort(80)));
    assert.equal(record.type, "flow");
    assert.equal(record.verdict, "allowed");
    assert.equal(record.rule, "web-out");
    assert.equal(record.direction, "egress");
    // curl may be gone by the time its close is read: then its comm names it
    assert.equal(record.process?.name, "curl");
    assert.ok(["/usr/bin/curl", ""].includes(record.process?.path ?? "?"));
    assert.equal(record.flow?.connections, 1);
    assert.equal(record.flow?.closed, 1);
    assert.ok((record.flow?.bytes ?? 0) >= SIZE, `${record.flow?.bytes} bytes >= ${SIZE}`);
  });

  await t.test("a long connection gets periodic records before it closes", async () => {
    const nc = spawn(
      "nsenter",
      [
        `--net=/run/netns/${lab.b}`,
        "sh",
        "-c",
        `echo $$ > ${dir}/cgroup.procs && exec nc ${lab.v4.a} 8080`,
      ],
      { stdio: ["pipe", "ignore", "ignore"] },
    );
    t.after(() => nc.kill("SIGKILL"));
    const beat = setInterval(() => nc.stdin.write("x".repeat(1000)), 300);
    try {
      // two records of the open connection: it counts once, its bytes grow, it has not ended
      const open = await until("two periodic records", () => {
        const seen = flows().filter(toPort(8080));
        return seen.length >= 2 ? seen : undefined;
      });
      assert.ok(open.every((e) => e.flow?.closed === 0 && e.verdict === "allowed"));
      assert.equal(
        open.reduce((n, e) => n + (e.flow?.connections ?? 0), 0),
        1,
        "one connection",
      );
      assert.ok(open.every((e) => (e.flow?.bytes ?? 0) > 0));
    } finally {
      clearInterval(beat);
      nc.kill("SIGTERM");
    }
    await until("its close", () =>
      flows().some((e) => toPort(8080)(e) && e.flow?.closed === 1) ? true : undefined,
    );
  });

  await t.test("moat stats --json shows the roll-up; filters narrow it", () => {
    const stats = (...args: string[]) => {
      const r = spawnSync(MOAT, ["stats", "--json", "--since", "1h", ...args, ...api], {
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as StatsPage;
    };
    const page = stats();
    assert.equal(page.resolution, "minute");
    const web = page.rows.find((r) => r.peer === lab.v4.a && r.port === 80);
    assert.ok(web, JSON.stringify(page.rows));
    assert.ok(["/usr/bin/curl", "curl"].includes(web.identity.exe), web.identity.exe);
    assert.equal(web.protocol, "tcp");
    assert.equal(web.direction, "egress");
    assert.equal(web.connections, 1);
    assert.deepEqual(web.verdicts, { allowed: 1, blocked: 0, detected: 0 });
    assert.ok(web.bytes >= SIZE);
    const long = page.rows.find((r) => r.port === 8080);
    assert.equal(long?.identity.exe, "/usr/bin/nc.openbsd");
    assert.equal(long?.connections, 1);
    assert.equal(stats("--process", "curl").rows.length, 1);
    assert.equal(stats("--peer", "192.0.2.1").rows.length, 0);
    // the table form names the same row
    const table = spawnSync(MOAT, ["stats", "--since", "1h", ...api], { encoding: "utf8" });
    assert.match(table.stdout, new RegExp(`curl .*${lab.v4.a.replace(/\./g, "\\.")} +80 +tcp`));
  });

  await t.test("allowed connections stay out of the audit log and the event listing", () => {
    assert.doesNotMatch(lab.audit(), /ALLOWED|FLOW/);
    assert.deepEqual(
      storedEvents<MoatEvent>(lab).filter((e) => e.type === "flow" || e.verdict === "allowed"),
      [],
    );
  });
});
