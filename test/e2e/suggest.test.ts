// moat suggest in the namespace lab: real curl connections that the detect-mode default
// reports, then the daemon's suggestion from its roll-ups proposes a rule for curl's
// destination, and replaying the stored history through the suggested policy turns them from
// detected into allowed and blocks nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { MOAT } from "../helpers/paths.ts";
import { until } from "../helpers/stored-events.ts";
import type { ReplayAnswer, SuggestAnswer } from "../../src/api/index.ts";

test("moat suggest proposes a rule for what curl did; replay shows detected -> allowed", async (t) => {
  const cg = cgroupForTest(t, "suggest");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(
    cg,
    "suggest",
    (l) => `version: 1
# learning: unknown outbound connections are reported, nothing dropped
mode: detect
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} }, history: { flow_interval: 2s } }
`,
    ["tcp:80"],
  );
  const api = ["--api", `unix:${lab.apiSocket}`];
  const moat = (...args: string[]) =>
    spawnSync(MOAT, [...args, ...api], { encoding: "utf8", timeout: 30_000 });

  for (let i = 0; i < 3; i++) {
    const r = runIn(lab.b, dir, [
      "curl",
      "-sS",
      "--max-time",
      "5",
      "-o",
      "/dev/null",
      `http://${lab.v4.a}/`,
    ]);
    assert.equal(r.status, 0, r.stderr);
  }
  // the roll-ups hold curl's connections once their flow records are written
  const answer = await until("a suggestion for curl", () => {
    const r = moat("suggest", "--stable", "0", "--since", "1h", "--json");
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as SuggestAnswer;
    return a.rules.some((rule) => rule.hits >= 3) ? a : undefined;
  });
  const rule = answer.rules.find((r) => r.remote.includes(lab.v4.a));
  assert.ok(rule, JSON.stringify(answer.rules));
  assert.deepEqual(
    [rule.direction, rule.action, rule.protocol, rule.ports],
    ["egress", "allow", "tcp", [80]],
  );
  assert.ok(["/usr/bin/curl", "curl"].includes(rule.identity.exe), rule.identity.exe);
  assert.deepEqual(answer.problems, []);
  assert.ok(answer.diff.includes(`+  - name: ${rule.name}`), answer.diff.join("\n"));
  assert.ok(answer.diff.includes("+    mode: detect"));

  // the suggested policy replayed over the stored events: curl's connections newly allowed
  const scratch = mkdtempSync(join(tmpdir(), "moat-suggest-"));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const file = join(scratch, "suggested.yaml");
  const written = moat("suggest", "--stable", "0", "--since", "1h", "--output", file);
  assert.equal(written.status, 0, written.stderr);
  const replay = moat("policy", "replay", file, "--since", "1h", "--baseline", "running", "--json");
  assert.equal(replay.status, 0, replay.stderr);
  const report = JSON.parse(replay.stdout) as ReplayAnswer;
  assert.equal(report.changes.blocked.count, 0, "nothing newly blocked");
  // at least one: a connection whose curl exited before moat read its executable is stored
  // with its name only, and replay judges what was stored (the kernel matches the path at
  // connect time)
  assert.ok(report.changes.allowed.count >= 1, JSON.stringify({ ...report, changes: undefined }));
  for (const g of report.changes.allowed.groups) {
    assert.deepEqual(Object.keys(g.was), ["detected"]);
    assert.deepEqual(
      g.rules.map((r) => r.rule),
      [rule.name],
    );
  }
});
