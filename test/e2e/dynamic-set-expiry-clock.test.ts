// A dynamic set entry expires by the wall clock: after the clock steps two hours forward (NTP
// correcting a clock that ran late, a resume from suspend), an entry added for an hour stops
// blocking its client within the daemon's re-check, and its expiry is in the audit log, as its
// add is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { until } from "../helpers/until.ts";
import { stateDir } from "../helpers/daemon-state.ts";
import { setBlockPolicy } from "../helpers/set-block-policy.ts";
import { steppedWallClock } from "../helpers/stepped-wall-clock.ts";

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("an entry expires when the wall clock steps past its expiry, and the expiry is audited", async (t) => {
  stateDir(t);
  const clock = steppedWallClock();
  t.after(() => clock.remove());
  const lab = await startMoatLab(t.name, setBlockPolicy("banned", "{ dynamic: true }"), undefined, {
    moat: clock.command([MOAT]),
  });
  t.after(() => lab.close());
  const web = () => lab.curl(`http://${lab.v4.b}:80/`, ["--max-time", "1"]).status === 0;

  const added = moat(lab, "set", "add", "banned", lab.v4.a, "--timeout", "3600");
  assert.equal(added.code, 0, added.stderr);
  assert.equal(web(), false, "banned for an hour");
  await lab.auditHas(new RegExp(`set banned: add ${lab.v4.a} by `));

  clock.step(2 * 3_600_000);
  await until("the client let through again", () => (web() ? true : undefined), 60_000, 500);
  await lab.auditHas(new RegExp(`set banned: expired ${lab.v4.a}$`, "m"));
});
