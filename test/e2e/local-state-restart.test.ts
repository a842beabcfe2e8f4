// What a person decided at run time outlives the daemon: an unknown connection waiting in the
// review queue and the mode `moat mode` switched to (a local decision, the policy file untouched)
// are both there after a restart, and `moat mode policy` gives the file's mode back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { until } from "../helpers/stored-events.ts";
import type { DecisionsView, ReviewView } from "../../src/api/index.ts";

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const reaches = (lab: MoatLab) =>
  lab.curl(`http://${lab.v4.b}:8080/`, ["--max-time", "2"]).status === 0;
const queue = (lab: MoatLab) =>
  JSON.parse(moat(lab, "review", "list", "--json").stdout || "{}") as ReviewView;
const mode = (lab: MoatLab) =>
  (JSON.parse(moat(lab, "status", "--json").stdout) as { mode: string }).mode;

test("the review queue and moat mode's decision survive a restart; the file is untouched", async (t) => {
  const lab = await startMoatLab(
    t.name,
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
review: { silent_block: true }
rules:
  - { name: ssh, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] } }
`,
  );
  t.after(() => lab.close());
  const policyText = readFileSync(lab.policyPath, "utf8");

  assert.equal(reaches(lab), false, "an unknown connection is blocked (prevent)");
  const entry = await until("the queued connection", () =>
    queue(lab).entries?.find((e) => e.remote.ip === lab.v4.a && e.port === 8080),
  );

  const switched = moat(lab, "mode", "detect");
  assert.equal(switched.code, 0, switched.stderr);
  assert.match(switched.stdout, /^mode detect: generation \d+$/m);
  assert.equal(mode(lab), "detect");
  assert.equal(reaches(lab), true, "detect lets it through");
  assert.equal(readFileSync(lab.policyPath, "utf8"), policyText, "the policy file is untouched");
  assert.match(moat(lab, "decisions").stdout, /^mode detect {2}\(by unix uid 0 pid \d+ at /m);
  await lab.auditHas(/POLICY APPLIED mode detect by unix uid 0 pid \d+: generation/);

  // the queue is written a second after a change: wait for it, then stop and start again
  const reviewFile = join(lab.dir, "review.json");
  await until("the queue on disk", () => {
    try {
      return readFileSync(reviewFile, "utf8").includes(entry.id) ? true : undefined;
    } catch {
      return undefined;
    }
  });
  assert.equal(statSync(reviewFile).mode & 0o777, 0o600);
  await lab.restart("SIGTERM");

  assert.equal(mode(lab), "detect", "the decided mode, not the file's");
  const kept = queue(lab).entries.find((e) => e.id === entry.id);
  assert.ok(kept, "the queued connection still waits");
  assert.equal(kept.remote.ip, lab.v4.a);
  assert.ok(kept.count >= entry.count);
  assert.equal(
    (JSON.parse(moat(lab, "decisions", "--json").stdout) as DecisionsView).mode?.mode,
    "detect",
  );
  assert.equal(reaches(lab), true, "still detect after the restart");

  // and it can still be answered
  const allowed = moat(lab, "review", "allow", entry.id, "--lifetime", "1h");
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(
    queue(lab).entries.find((e) => e.id === entry.id),
    undefined,
    "the answered entry left the queue",
  );

  const back = moat(lab, "mode", "policy");
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /^mode of the policy file: generation \d+$/m);
  assert.equal(mode(lab), "prevent");
  assert.equal(readFileSync(lab.policyPath, "utf8"), policyText);
  assert.equal(
    (JSON.parse(moat(lab, "decisions", "--json").stdout) as DecisionsView).mode,
    undefined,
  );
});
