// The systemd unit moat installs: systemd itself accepts it (offline, against a scratch root that
// holds the unit, its commands and the stock targets), and its sandbox keeps the exposure
// `systemd-analyze security` reports at or under the figure docs/operations.md explains.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/paths.ts";

const UNIT = join(ROOT, "packaging/moat.service");
/** The highest exposure accepted (docs/operations.md, "The service's sandbox"). */
const MAX_EXPOSURE = 4.0;
const STOCK_UNITS = "/lib/systemd/system";

test("systemd-analyze verify accepts the unit without a warning", () => {
  const root = mkdtempSync(join(tmpdir(), "moat-unit-"));
  try {
    const units = join(root, "lib/systemd/system");
    for (const dir of [units, join(root, "usr/bin"), join(root, "bin")])
      mkdirSync(dir, { recursive: true });
    // the commands the unit runs must exist and be executable in the root
    copyFileSync("/bin/true", join(root, "usr/bin/moat"));
    copyFileSync("/bin/kill", join(root, "bin/kill"));
    for (const name of readdirSync(STOCK_UNITS))
      if (name.endsWith(".target") || name.endsWith(".slice"))
        copyFileSync(join(STOCK_UNITS, name), join(units, name));
    copyFileSync(UNIT, join(units, "moat.service"));
    const r = spawnSync("systemd-analyze", ["verify", `--root=${root}`, "moat.service"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", "verify warns");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test(`the unit's exposure is at most ${MAX_EXPOSURE}`, () => {
  const r = spawnSync("systemd-analyze", ["security", "--offline=yes", "--no-pager", UNIT], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const m = /Overall exposure level for moat\.service: ([\d.]+)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.ok(Number(m[1]) <= MAX_EXPOSURE, `exposure ${m[1]} > ${MAX_EXPOSURE}`);
});

test("the unit reloads with SIGHUP, restarts with the daemon's hand-over and keeps V8's JIT", () => {
  const text = readFileSync(UNIT, "utf8");
  assert.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  // stop detaches (SIGTERM); restart hands the pinned programs to the next daemon (SIGUSR2)
  assert.match(text, /^KillSignal=SIGTERM$/m);
  assert.match(text, /^RestartKillSignal=SIGUSR2$/m);
  assert.match(text, /^Type=exec$/m);
  assert.doesNotMatch(text, /^MemoryDenyWriteExecute=/m);
});
