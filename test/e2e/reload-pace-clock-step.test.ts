// Reloads are paced by a monotonic clock: after the wall clock steps a day back (NTP correcting a
// clock that ran ahead), a SIGHUP reload and a decision made behind it are applied at once, and a
// daemon told to stop (SIGTERM) right after a SIGHUP ends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { steppedWallClock } from "../helpers/stepped-wall-clock.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (l: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
`;

const DAY_MS = 86_400_000;

/** `moat ARGS`; resolves with its exit status, or "still running" when it has not ended by then. */
function moat(lab: MoatLab, ms: number, ...args: string[]): Promise<number | string> {
  const child = spawn(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], { stdio: "ignore" });
  return new Promise((resolve) => {
    const bound = setTimeout(() => {
      child.kill("SIGKILL");
      resolve("still running");
    }, ms);
    child.on("exit", (code) => {
      clearTimeout(bound);
      resolve(code ?? "killed");
    });
  });
}

test("a wall clock stepped back stalls no change, and a stopping daemon ends", async (t) => {
  const clock = steppedWallClock();
  t.after(() => clock.remove());
  const lab = await startMoatLab(t.name, policy, undefined, { moat: clock.command([MOAT]) });
  t.after(() => lab.close());

  lab.daemon.proc.kill("SIGHUP");
  await lab.auditHas(/POLICY APPLIED reload by signal SIGHUP: generation 2,/);
  clock.step(-DAY_MS);
  // the daemon's Date takes the step within 100 ms
  await new Promise((r) => setTimeout(r, 1000));

  lab.daemon.proc.kill("SIGHUP");
  const added = await moat(
    lab,
    60_000,
    "decisions",
    "add",
    "allow",
    lab.v4.a,
    "--direction",
    "ingress",
    "--protocol",
    "tcp",
    "--port",
    "8080",
    "--lifetime",
    "1h",
  );
  assert.equal(added, 0, "the decision made behind the reload is answered");
  await lab.auditHas(/POLICY APPLIED reload by signal SIGHUP: generation 3,/);
  assert.equal(lab.scan([8080]).get(8080), "open", "the decision is in force");

  lab.daemon.proc.kill("SIGHUP");
  lab.daemon.kill("SIGTERM");
  const ended = await Promise.race([
    lab.daemon.exited,
    new Promise((r) => setTimeout(() => r("still running"), 60_000).unref()),
  ]);
  assert.equal(ended, 0, "the daemon ends after SIGTERM");
});
