// Cgroups come and go all the time (a systemd transient unit, an SSH login's session scope, a
// container): a running policy whose process rules name no cgroup and no container is not
// compiled again for them. A policy that names one is: test/e2e/process-rules.test.ts ("a cgroup
// made while moat runs is found, and its rule applies") shows a cgroup made while moat runs
// taken into its rule.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { appliedGenerations, reloadBySignal } from "../helpers/daemon-state.ts";

/** Long enough for the daemon to have looked at the host again (inotify, then a read). */
const settle = () => new Promise((r) => setTimeout(r, 2000));

test("a cgroup made and removed applies nothing when no rule names a cgroup", async (t) => {
  const cg = cgroupForTest(t, "churn");
  const lab = await startCgroupLab(
    cg,
    t.name,
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: no-curl-8080, direction: egress, action: block, process: { name: [curl] }, layer4: { protocol: tcp, port: [8080] } }
`,
    ["tcp:8080"],
  );
  const scope = join(cg.dir, `session-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  cg.onClose(() => {
    if (existsSync(scope)) rmdirSync(scope);
  });

  mkdirSync(scope);
  // a process enters it and leaves (cgroup.events is written twice), as in a session scope
  const r = runIn(lab.b, scope, ["curl", "-sS", "--max-time", "3", `http://${lab.v4.a}:8080/`]);
  assert.equal(r.status, 7, `curl is refused by name: ${r.stderr}`);
  await settle();
  rmdirSync(scope);
  await settle();

  // a reload, queued behind any compile the cgroups asked for: the generation after the start's
  await reloadBySignal(lab);
  assert.deepEqual(
    appliedGenerations(lab),
    [1, 2],
    `the start's policy, then the reload's:\n${lab.daemon.lines.join("\n")}`,
  );
});
