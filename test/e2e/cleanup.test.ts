// moat cleanup after a daemon killed with SIGKILL: the daemon's pinned links (its programs stay
// attached through them) and maps are gone, and no link of its stays in the kernel. While a
// daemon runs with the same pin directory, cleanup refuses and says how to stop it, whether the
// daemon runs from the sources or from the bundle the package installs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { MOAT, NODE, ROOT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;

const cleanup = (pinDir: string, apiSocket: string) =>
  spawnSync(MOAT, ["cleanup", "--pin-dir", pinDir, "--api", `unix:${apiSocket}`], {
    encoding: "utf8",
  });

/** Kernel ids of the links pinned in `dir`. */
function pinnedLinkIds(dir: string): number[] {
  return readdirSync(dir)
    .filter((name) => name.startsWith("link_"))
    .map((name) => {
      const r = spawnSync("bpftool", ["-j", "link", "show", "pinned", `${dir}/${name}`], {
        encoding: "utf8",
      });
      return (JSON.parse(r.stdout) as { id: number }).id;
    });
}

function kernelLinkIds(): Set<number> {
  const r = spawnSync("bpftool", ["-j", "link", "show"], { encoding: "utf8" });
  return new Set((JSON.parse(r.stdout) as { id: number }[]).map((l) => l.id));
}

test("moat cleanup removes a killed daemon's pins and links, and refuses while it runs", async () => {
  const lab = await startMoatLab("cleanup", policy);
  try {
    const busy = cleanup(lab.pinDir, lab.apiSocket);
    assert.equal(busy.status, 1);
    assert.match(busy.stderr, /a moat daemon is running with .* \(pid \d+\).*systemctl stop moat/s);
    assert.ok(existsSync(lab.pinDir), "cleanup touched a running daemon's pins");

    const links = pinnedLinkIds(lab.pinDir);
    assert.ok(links.length > 0, "the daemon pinned no link");
    lab.daemon.kill("SIGKILL");
    await lab.daemon.exited;
    assert.ok(existsSync(lab.pinDir), "a killed daemon's pins stay");

    const r = cleanup(lab.pinDir, lab.apiSocket);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^detached .*link_/m);
    assert.match(r.stdout, new RegExp(`^removed ${lab.pinDir}$`, "m"));
    assert.ok(!existsSync(lab.pinDir), "the pin directory stayed");
    assert.ok(!existsSync(lab.apiSocket), "the API socket stayed");
    const live = kernelLinkIds();
    assert.deepEqual(
      links.filter((id) => live.has(id)),
      [],
      "links still attached",
    );

    const again = cleanup(lab.pinDir, lab.apiSocket);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^nothing to clean up$/m);
  } finally {
    await lab.close();
  }
});

test("moat cleanup refuses while the installed daemon (the bundle) runs with the same pins", async () => {
  const bundle = `${ROOT}build/dist/cli-main.mjs`;
  assert.ok(existsSync(bundle), `${bundle} is missing: make build`);
  const lab = await startMoatLab("cleanup-bundle", policy, undefined, {
    moat: [NODE, "--max-semi-space-size=2", bundle],
  });
  try {
    const busy = cleanup(lab.pinDir, lab.apiSocket);
    assert.equal(busy.status, 1, busy.stdout);
    assert.match(busy.stderr, /a moat daemon is running with .* \(pid \d+\)/s);
    assert.ok(existsSync(lab.pinDir), "cleanup removed a running daemon's pins");
    assert.ok(pinnedLinkIds(lab.pinDir).length > 0, "the running daemon's links are pinned");
  } finally {
    await lab.close();
  }
});
