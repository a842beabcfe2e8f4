// `moat run` prints what it loaded and where it attached, pins its links, and on SIGINT/SIGTERM
// detaches everything and exits 0, leaving no moat links, programs or pins behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, sh } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT } from "../helpers/paths.ts";

interface BpftoolLink {
  id: number;
  prog_id: number;
}

const linkIds = () =>
  (JSON.parse(sh("bpftool", ["link", "list", "-j"])) as BpftoolLink[]).map((l) => l.id).sort();
const moatPrograms = () =>
  (JSON.parse(sh("bpftool", ["prog", "list", "-j"])) as { name?: string }[])
    .map((p) => p.name ?? "")
    .filter((n) => n.startsWith("moat_"));

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  test(`moat run attaches, pins, and cleans up on ${signal}`, async (t) => {
    const lab = createLab(t.name);
    const pinDir = `/sys/fs/bpf/moat-test-${lab.tag}`;
    const linksBefore = linkIds();
    const programsBefore = moatPrograms();
    // the API socket and the history in a temp dir: a test leaves nothing in /run or /var/lib
    const tmp = mkdtempSync(join(tmpdir(), "moat-run-"));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    const daemon = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      MOAT,
      "run",
      "--interface",
      lab.ifB,
      "--pin-dir",
      pinDir,
      "--api",
      `unix:${join(tmp, "api.sock")}`,
      "--history",
      join(tmp, "history.db"),
    ]);
    try {
      await daemon.waitFor(/^moat is running/);
      const out = daemon.lines.join("\n");
      assert.match(
        out,
        /^loaded moat\.bpf\.o: moat_connect4, moat_connect6, moat_sendmsg4, moat_sendmsg6, moat_accept_bind4, moat_accept_bind6, moat_accept, moat_xdp_ingress, moat_tc_egress$/m,
      );
      assert.match(
        out,
        new RegExp(
          `^attached moat_xdp_ingress to ${lab.ifB} \\(ifindex \\d+\\) xdp (native|generic), link \\d+, pinned at ${pinDir}/`,
          "m",
        ),
      );
      assert.match(
        out,
        new RegExp(
          `^attached moat_tc_egress to ${lab.ifB} \\(ifindex \\d+\\) tc-egress tcx, link \\d+`,
          "m",
        ),
      );

      const during = linkIds();
      assert.equal(during.length, linksBefore.length + 2, "two new links while running");
      assert.ok(existsSync(`${pinDir}/link_xdp_${lab.ifB}`), "xdp link pinned");
      assert.ok(existsSync(`${pinDir}/link_tc-egress_${lab.ifB}`), "tc link pinned");

      daemon.kill(signal);
      assert.equal(await daemon.exited, 0, `exit code; stderr: ${daemon.stderr.join("\n")}`);
      assert.match(daemon.lines.join("\n"), /detached all programs/);
      assert.deepEqual(linkIds(), linksBefore, "bpftool link list after equals before");
      assert.deepEqual(moatPrograms(), programsBefore, "no moat programs left");
      assert.equal(existsSync(pinDir), false, "pin directory removed");
    } finally {
      daemon.kill("SIGKILL");
      spawnSync("rm", ["-rf", pinDir]);
      lab.cleanup();
    }
  });
}

test("moat run as a non-root user says in one sentence that it needs root", () => {
  const r = spawnSync(
    "setpriv",
    ["--reuid=65534", "--regid=65534", "--clear-groups", MOAT, "run"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim(),
    "moat: moat must run as root (loading eBPF programs needs it); run it with sudo.",
  );
});
