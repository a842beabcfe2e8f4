// A replaced executable, end to end: a client binary (a copy of curl) connects out, moat notes
// its content; the binary is replaced the way a package upgrade does (a new file renamed over
// it) and run again, twice: one `exe_changed` event, with the path and both sha256, reaches a
// live API subscriber, the audit log and the history; the identity stays the path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
} from "node:fs";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

test("a replaced binary is one exe_changed event in the API, the audit log and the history", async (t) => {
  const cg = cgroupForTest(t, "exechg");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(
    cg,
    "exe changed",
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} }, history: { flow_interval: 1s } }
rules:
  # a process rule: the socket hooks keep every connection's owner (docs/observability.md)
  - { name: no-wget, direction: egress, action: block, process: { name: [wget] } }
  - { name: web-out, direction: egress, action: allow, layer4: { protocol: tcp, port: [80] } }
`,
    ["tcp:80"],
  );
  const api = ["--api", `unix:${lab.apiSocket}`];
  const flowEvents = (): MoatEvent[] =>
    spawnSync(MOAT, ["events", "--json", "--type", "flow", "--limit", "1000", ...api], {
      encoding: "utf8",
      timeout: 20_000,
    })
      .stdout.split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as MoatEvent);
  // a live subscriber, as any API client subscribes
  const live = spawnLines(MOAT, ["events", "--follow", "--json", "--type", "exe_changed", ...api]);
  t.after(() => live.kill());
  mkdirSync(join(lab.dir, "bin"));
  const fetch = join(lab.dir, "bin", "fetch");
  copyFileSync("/usr/bin/curl", fetch);
  const before = sha(fetch);
  // a connection held for 3 s (curl's telnet client, waiting on its input), so the periodic
  // flow records see the process alive
  const run = () => {
    const r = runIn(lab.b, dir, [
      "sh",
      "-c",
      `sleep 5 | ${fetch} -s --max-time 3 telnet://${lab.v4.a}:80; true`,
    ]);
    assert.equal(r.status, 0, r.stderr);
  };
  run();
  // the first content is the path's baseline, kept beside the history
  const state = join(lab.dir, "executables.json");
  await until("the first content noted", () =>
    existsSync(state) && readFileSync(state, "utf8").includes(before) ? true : undefined,
  ).catch((err: Error) => {
    const flows = flowEvents().map((e) => JSON.stringify([e.process, e.flow]));
    throw new Error(
      `${err.message}; flows:\n${flows.join("\n")}\n${lab.daemon.lines.slice(-10).join("\n")}`,
    );
  });

  // an upgrade: a new file renamed over the old one
  copyFileSync("/usr/bin/curl", `${fetch}.new`);
  appendFileSync(`${fetch}.new`, "moat test build\n");
  renameSync(`${fetch}.new`, fetch);
  const after = sha(fetch);
  run();
  run();

  const line = await live.waitFor(/^\{/, 20_000);
  const ev = JSON.parse(line) as MoatEvent;
  assert.equal(ev.type, "exe_changed");
  assert.equal(ev.rule, "exe_changed");
  assert.deepEqual(ev.executable, {
    path: fetch,
    oldHash: before,
    newHash: after,
    identity: ev.executable?.identity,
  });
  assert.equal(ev.executable?.identity.exe, fetch, "the identity is still the path");
  assert.equal(ev.process?.path, fetch);
  assert.equal(ev.remote.ip, lab.v4.a);

  const audited = await until("the audit line", () =>
    lab
      .audit()
      .split("\n")
      .find((l) => l.includes("EXE_CHANGED")),
  );
  assert.match(
    audited,
    new RegExp(
      `EXE_CHANGED ${fetch} sha256 ${before} -> ${after} \\(fetch pid \\d+, user 0, cgroup ${cgroup}\\)`,
    ),
  );

  // another run of the new binary: once its flow record is stored (the watcher saw it), still
  // one event
  run();
  await until("the four runs' flow records", () => {
    const flows = flowEvents().filter((e) => e.process?.name === "fetch");
    return flows.reduce((n, e) => n + (e.flow?.connections ?? 0), 0) >= 4 ? true : undefined;
  });
  const stored = storedEvents<MoatEvent>(lab).filter((e) => e.type === "exe_changed");
  assert.equal(stored.length, 1, JSON.stringify(stored));
  assert.equal(stored[0]?.executable?.newHash, after);
  assert.equal(
    lab
      .audit()
      .split("\n")
      .filter((l) => l.includes("EXE_CHANGED")).length,
    1,
  );
  assert.equal(live.lines.filter((l) => l.startsWith("{")).length, 1);
});
