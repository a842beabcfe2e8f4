// Reloads of the policy file are audited like API changes: a change of the file and SIGHUP each
// leave a line in the audit log naming what caused them, applied or refused; and a change over
// the API socket names the caller's uid and pid.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";
import { untilTrue } from "../helpers/until.ts";

/** How long a wait for the audit log may take (read every 100 ms). */
const WAIT_MS = 10_000;

function policy(lab: Lab & { auditPath: string }, port: number): string {
  return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [${port}] }
`;
}

const BAD = "version: 1\nrules:\n  - name: Web\n    direction: ingress\n    action: allow\n";

test("file-change and SIGHUP reloads are audited, refusals included; API changes name uid and pid", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, 22));
  t.after(() => lab.close());
  const generation = () =>
    (
      JSON.parse(
        spawnSync(MOAT, ["status", "--json", "--api", `unix:${lab.apiSocket}`], {
          encoding: "utf8",
        }).stdout,
      ) as { generation: number }
    ).generation;
  const g = generation();

  lab.writePolicy(BAD);
  await untilTrue(
    "the refused file change",
    () =>
      new RegExp(
        `POLICY REFUSED reload from file change: \\d+ errors, generation ${g} keeps running$`,
        "m",
      ).test(lab.audit()),
    WAIT_MS,
    100,
  );
  lab.writePolicy(policy(lab, 2222));
  await untilTrue(
    "the applied file change",
    () =>
      new RegExp(
        `POLICY APPLIED reload by file change: generation ${g + 1}, mode prevent, sha256 [0-9a-f]{64}$`,
        "m",
      ).test(lab.audit()),
    WAIT_MS,
    100,
  );

  lab.daemon.proc.kill("SIGHUP");
  await untilTrue(
    "the SIGHUP reload",
    () => lab.audit().includes(`POLICY APPLIED reload by signal SIGHUP: generation ${g + 2}`),
    WAIT_MS,
    100,
  );
  assert.equal(generation(), g + 2);

  const mode = spawnSync(MOAT, ["mode", "detect", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
  });
  assert.equal(mode.status, 0, mode.stderr);
  // the CLI's own pid: the kernel's record of who connected
  await lab.auditHas(/POLICY APPLIED mode detect by unix uid 0 pid \d+: generation/);
  const pid = Number(/by unix uid 0 pid (\d+)/.exec(lab.audit())?.[1]);
  assert.notEqual(pid, lab.daemon.proc.pid, "the peer, not the daemon");
});
