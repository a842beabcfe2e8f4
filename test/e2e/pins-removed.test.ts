// The pin directory removed by hand while the daemon runs (rm -rf /sys/fs/bpf/moat): the daemon
// pins its programs and maps again, so a hand-over (SIGUSR2, `systemctl restart`) or a death
// (SIGKILL) leaves the host enforcing as it says, not open. Seen from the peer namespace: a
// blocked port stays filtered with no daemon running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { startMoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";
import { until } from "../helpers/until.ts";

const policy = (lab: Lab) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
rules:
  - { name: ssh, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] } }
`;

for (const signal of ["SIGUSR2", "SIGKILL"] as const)
  test(`pins removed while moat runs, then ${signal}: the blocked port stays blocked`, async (t) => {
    const lab = await startMoatLab(t.name, policy);
    try {
      assert.deepEqual(
        [...lab.scan([22, 80])],
        [
          [22, "open"],
          [80, "filtered"],
        ],
      );
      spawnSync("rm", ["-rf", lab.pinDir]);
      // the daemon notices within seconds; a hand-over checks again before it leaves
      if (signal === "SIGKILL")
        await until("the pins again", () => existsSync(`${lab.pinDir}/abi`) || undefined, 20_000);
      const daemon = lab.daemon;
      daemon.kill(signal);
      await daemon.exited;
      const out = daemon.lines.join("\n");
      assert.deepEqual(
        [...lab.scan([22, 80])],
        [
          [22, "open"],
          [80, "filtered"],
        ],
        `with no daemon, the pinned programs enforce the policy:\n${out}`,
      );
      assert.match(out, /pinned again/, "the daemon says what it found and did");
    } finally {
      await lab.close();
    }
  });
