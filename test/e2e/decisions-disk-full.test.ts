// The decisions file on a full disk (a small tmpfs, filled): `moat mode detect` and
// `moat decisions add` are refused saying the file could not be saved, and nothing of them takes
// effect, not even at the next reload: the port the policy blocks stays blocked.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (l: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
`;

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A 1 MiB tmpfs mounted on a new directory; `fill` leaves no byte free. */
function smallDisk() {
  const dir = mkdtempSync(join(tmpdir(), `moat-full-${process.pid}-`));
  const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", dir], {
    encoding: "utf8",
  });
  if (mount.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`tmpfs not mounted on ${dir}: ${mount.stderr}`);
  }
  return {
    dir,
    fill: () => {
      // dd stops at ENOSPC
      spawnSync("dd", ["if=/dev/zero", `of=${join(dir, "fill")}`, "bs=4k"], { encoding: "utf8" });
    },
    remove: () => {
      spawnSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const NOT_SAVED =
  /could not save the decisions to \S+decisions\.json: ENOSPC \(no space left on device\)/;

test("a mode or decision that cannot be saved is refused and never takes effect", async (t) => {
  const disk = smallDisk();
  t.after(() => disk.remove());
  const lab = await startMoatLab(t.name, policy, undefined, {
    beforeDaemon: async () => ["--decisions", join(disk.dir, "decisions.json")],
  });
  t.after(() => lab.close());
  assert.notEqual(lab.scan([8080]).get(8080), "open", "the policy blocks 8080");
  disk.fill();

  const mode = moat(lab, "mode", "detect");
  assert.notEqual(mode.code, 0, mode.stdout);
  assert.match(mode.stderr, NOT_SAVED);
  const add = moat(
    lab,
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
  assert.notEqual(add.code, 0, add.stdout);
  assert.match(add.stderr, NOT_SAVED);
  const listed = moat(lab, "decisions", "list", "--json");
  assert.equal(listed.code, 0, listed.stderr);
  assert.doesNotMatch(listed.stdout, /"remote"/, "no decision is listed");
  assert.doesNotMatch(listed.stdout, /"mode"\s*:\s*\{/, "no mode decision is listed");

  lab.daemon.proc.kill("SIGHUP");
  await lab.auditHas(/POLICY APPLIED reload by signal SIGHUP: generation \d+, mode prevent/);
  assert.notEqual(lab.scan([8080]).get(8080), "open", "8080 stays blocked after the reload");
});
