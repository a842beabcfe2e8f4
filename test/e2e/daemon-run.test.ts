// `moat run` prints what it loaded and where it attached, pins its links, and on SIGINT/SIGTERM
// detaches everything and exits 0, leaving no moat links, programs or pins behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, labPinDir, sh } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT } from "../helpers/paths.ts";

interface BpftoolLink {
  id: number;
  prog_id: number;
}

// other moat instances may run meanwhile (another test run): only this daemon's links and
// programs are counted, by the link ids it prints
const links = () => JSON.parse(sh("bpftool", ["link", "list", "-j"])) as BpftoolLink[];
const programIds = () =>
  new Set((JSON.parse(sh("bpftool", ["prog", "list", "-j"])) as { id: number }[]).map((p) => p.id));

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  test(`moat run attaches, pins, and cleans up on ${signal}`, async (t) => {
    const lab = createLab(t.name);
    const pinDir = labPinDir(lab.tag);
    // the API socket and the history in a temp dir: a test leaves nothing in /run or /var/lib
    const tmp = mkdtempSync(join(tmpdir(), "moat-run-"));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    // the policy in the temp dir too: `moat policy apply` saves into the policy file
    const policy = join(tmp, "policy.yaml");
    writeFileSync(policy, 'version: 1\nmode: detect\nattach: { interfaces: ["*"] }\n');
    const daemon = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      MOAT,
      "run",
      "--policy",
      policy,
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
      await daemon.waitFor(/^moat is running/, 60_000);
      const out = daemon.lines.join("\n");
      assert.match(
        out,
        /^loaded moat\.bpf\.o: moat_post_route, moat_getpeername4, moat_getpeername6, moat_recvmsg4, moat_recvmsg6, moat_sockops, moat_sock_create, moat_connect4, moat_connect6, moat_sendmsg4, moat_sendmsg6, moat_post_bind4, moat_post_bind6, moat_accept, moat_splice_verdict, moat_exec, moat_fork, moat_xdp_ingress, moat_tc_egress, moat_tc_ingress, moat_tc_cookie$/m,
      );
      assert.match(
        out,
        new RegExp(
          // --interface names are attach entries without a hook: auto, tc ingress on a veth
          `^attached moat_tc_ingress to ${lab.ifB} \\(ifindex \\d+\\) tc-ingress tcx \\(auto: veth -> tc\\), link \\d+, pinned at ${pinDir}/`,
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

      const mine = [...out.matchAll(/^attached .*, link (\d+)/gm)].map((m) => Number(m[1]));
      assert.equal(mine.length, 2, "two links: tc ingress and tc egress");
      const live = links().filter((l) => mine.includes(l.id));
      assert.equal(live.length, 2, "both links exist while running");
      assert.ok(existsSync(`${pinDir}/link_tc-ingress_${lab.ifB}`), "tc ingress link pinned");
      assert.ok(existsSync(`${pinDir}/link_tc-egress_${lab.ifB}`), "tc link pinned");

      daemon.kill(signal);
      assert.equal(await daemon.exited, 0, `exit code; stderr: ${daemon.stderr.join("\n")}`);
      assert.match(daemon.lines.join("\n"), /detached all programs/);
      const after = new Set(links().map((l) => l.id));
      assert.deepEqual(
        mine.filter((id) => after.has(id)),
        [],
        "its links are gone",
      );
      const programs = programIds();
      assert.deepEqual(
        live.map((l) => l.prog_id).filter((id) => programs.has(id)),
        [],
        "its programs are unloaded",
      );
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
