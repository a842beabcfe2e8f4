// failure.daemon, seen from the peer: under `allow`, a daemon killed with SIGKILL stops
// beating and, after the grace period, the kernel lets everything through (a blocked port
// opens) until a daemon runs again; under `enforce` (the default) the dead daemon's programs
// keep blocking. A daemon whose standard output goes away (a pipe's reader ended) is not a
// failure: it goes on logging to its audit log and detaches on SIGTERM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

const policy = (lab: Lab & { auditPath: string }, failure: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
${failure}`;

/** Whether a TCP connection from a to b's port 80 (blocked by the policy) opens. */
const opens = (lab: MoatLab) => lab.inA("nc", ["-z", "-w", "1", lab.v4.b, "80"], 5000) === 0;

async function killDaemon(lab: MoatLab): Promise<void> {
  lab.daemon.kill("SIGKILL");
  await lab.daemon.exited;
}

test(
  "failure.daemon allow: a dead daemon's hooks let everything through after the grace period; enforce keeps blocking",
  { timeout: 180_000 },
  async (t) => {
    const lab = await startMoatLab(t.name, (l) => policy(l, "failure: { daemon: allow }"));
    try {
      assert.equal(opens(lab), false, "port 80 is blocked while the daemon runs");

      await killDaemon(lab);
      let opened = false;
      for (let i = 0; i < 30 && !opened; i++) {
        opened = opens(lab);
        if (!opened) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(opened, "port 80 opens once the heartbeat is late");

      // a daemon runs again: it beats before anything else, and the policy is enforced
      await lab.restart("SIGKILL");
      assert.equal(opens(lab), false, "port 80 is blocked again with a daemon");

      // enforce (the default): the programs of a dead daemon keep judging
      await reloadPolicy(lab, policy(lab, ""));
      await killDaemon(lab);
      await new Promise((r) => setTimeout(r, 7000)); // past the 5 s grace period
      assert.equal(opens(lab), false, "port 80 stays blocked under enforce");

      // the reader of a daemon's standard output goes away: it keeps running and logging
      const daemon = await lab.restart("SIGKILL");
      daemon.proc.stdout?.destroy();
      const blockedAfter = (port: number) =>
        new RegExp(`(?:BLOCK|block).*${lab.v4.b.replaceAll(".", "\\.")}:${port}\\b`);
      lab.inA("nc", ["-z", "-w", "1", lab.v4.b, "81"], 5000);
      await lab.auditHas(blockedAfter(81));
      await new Promise((r) => setTimeout(r, 500)); // a write's EPIPE comes a turn later
      lab.inA("nc", ["-z", "-w", "1", lab.v4.b, "82"], 5000);
      await lab.auditHas(blockedAfter(82));
      const exited = await Promise.race([daemon.exited, Promise.resolve("running")]);
      assert.equal(exited, "running", "the daemon runs on without its standard output");
      daemon.kill("SIGTERM");
      assert.equal(await daemon.exited, 0, "SIGTERM still detaches and exits");
      assert.match(daemon.stderr.join("\n"), /standard output closed/);
    } finally {
      await lab.close();
    }
  },
);
