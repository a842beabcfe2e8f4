// Event times follow the wall clock: after the wall clock steps (NTP correcting a wrong clock
// after boot, a resume from suspend), a blocked connection is stored at the time it happened on
// the stepped clock, so `moat events --since 1m` (on that same clock) lists it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { steppedWallClock, type SteppedWallClock } from "../helpers/stepped-wall-clock.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
rules:
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`;

interface Ev {
  time: string;
  type: string;
  local: { port: number };
}

const blocked80 = (list: Ev[]) => list.filter((e) => e.type === "blocked" && e.local.port === 80);

/** `moat events --json ARGS` run on the stepped clock. */
function eventsOnClock(lab: MoatLab, clock: SteppedWallClock, ...args: string[]): Ev[] {
  const [cmd = "", ...argv] = clock.command([
    MOAT,
    "events",
    "--json",
    ...args,
    "--api",
    `unix:${lab.apiSocket}`,
  ]);
  const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Ev);
}

test("a connection blocked after the wall clock stepped an hour forward is in `moat events --since 1m`", async (t) => {
  const clock = steppedWallClock();
  t.after(() => clock.remove());
  const lab = await startMoatLab(t.name, policy, undefined, { moat: clock.command([MOAT]) });
  t.after(() => lab.close());

  clock.step(3_600_000);
  // the daemon's Date takes the step within 100 ms; moat reads the wall clock again at most
  // once a second of events
  await new Promise((r) => setTimeout(r, 2000));
  assert.notEqual(lab.curl(`http://${lab.v4.b}:80/`).status, 0, "port 80 is blocked");
  const stored = await until("the blocked connection stored", () => {
    const found = blocked80(storedEvents<Ev>(lab));
    return found.length ? found : undefined;
  });

  const recent = blocked80(eventsOnClock(lab, clock, "--type", "blocked", "--since", "1m"));
  assert.ok(
    recent.length > 0,
    `moat events --since 1m lists the connection blocked just now (stored at ${stored.map((e) => e.time).join(", ")}, now ${new Date(Date.now() + 3_600_000).toISOString()} on the stepped clock)`,
  );
});
