// A daemon in a time namespace (a CRIU-restored container: its CLOCK_MONOTONIC shifted from the
// kernel's) still beats on the kernel's clock: under failure.daemon allow a blocked port stays
// blocked while it runs, and no packet passes as "daemon gone".
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { until } from "../helpers/until.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
failure: { daemon: allow }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`;

/** Whether a TCP connection from a to b's port 80 (blocked by the policy) opens. */
const opens = (lab: MoatLab) => lab.inA("nc", ["-z", "-w", "1", lab.v4.b, "80"], 5000) === 0;

function daemonGonePackets(lab: MoatLab): number {
  const r = spawnSync(MOAT, ["status", "--json", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const status = JSON.parse(r.stdout) as { counters: { daemonGone: { packets: number } } };
  return status.counters.daemonGone.packets;
}

test("a daemon whose monotonic clock is an hour ahead (time namespace) keeps a blocked port blocked under failure.daemon allow", async (t) => {
  // the namespace: a sleeper made by unshare (its clocks an hour ahead), the daemon joins it
  const holder = spawn(
    "unshare",
    [
      "--time",
      "--fork",
      "--kill-child",
      "--monotonic",
      "3600",
      "--boottime",
      "3600",
      "sleep",
      "600",
    ],
    { stdio: "ignore" },
  );
  t.after(() => holder.kill("SIGKILL"));
  const sleeper = await until("the time namespace's first process", () => {
    try {
      const pid = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").trim();
      return pid || undefined;
    } catch {
      return undefined;
    }
  });
  const offsets = spawnSync("nsenter", ["-t", sleeper, "-T", "cat", "/proc/self/timens_offsets"], {
    encoding: "utf8",
  });
  assert.match(offsets.stdout, /^monotonic\s+3600\s+0$/m, offsets.stderr);

  const lab = await startMoatLab(t.name, policy, undefined, {
    moat: ["nsenter", "-t", sleeper, "-T", MOAT],
  });
  t.after(() => lab.close());

  assert.equal(opens(lab), false, "port 80 is blocked while the daemon runs");
  // past the 5 s grace period: the daemon's later heartbeats keep it alive too
  await new Promise((r) => setTimeout(r, 7000));
  assert.equal(opens(lab), false, "port 80 is still blocked after the grace period");
  assert.equal(daemonGonePackets(lab), 0, "no packet passed as daemon gone");
});
