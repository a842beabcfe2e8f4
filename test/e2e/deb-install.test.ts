// The .deb `make deb` builds (lintian-checked there), installed with dpkg into a fresh Debian 12
// root made from Debian's packages (mmdebstrap, only the package's run-time dependencies): the
// maintainer scripts install a detect-mode policy, `moat --version` and `moat check` run there,
// and the daemon, run in that root (chroot) inside a network namespace of this test, attaches to
// its veth and blocks what its policy blocks. The root's tarball (scripts/deb-root.sh) is cached
// under .tools/debroot, keyed by the package list, so only the first run downloads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { createLab, labPinDir, status } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { PACKAGING_LOCK, ROOT } from "../helpers/paths.ts";

const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;
const DEB = join(ROOT, `build/deb/moat_${VERSION}_amd64.deb`);

function run(cmd: string, args: string[], timeout = 600_000, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout,
    maxBuffer: 64 << 20,
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}${r.stdout.slice(-2000)}`);
  return r.stdout;
}

/** The package's Depends as package names (version constraints dropped). */
function depends(deb: string): string[] {
  return run("dpkg-deb", ["-f", deb, "Depends"])
    .split(",")
    .map((d) => d.trim().split(/[\s(]/)[0]!)
    .filter(Boolean)
    .sort();
}

/** Refuses to delete a root something is still mounted in (it would delete the host's /sys). */
function removeRoot(root: string): void {
  const mounted = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4]?.startsWith(root));
  assert.ok(!mounted, `${root} still has mounts; left in place`);
  rmSync(root, { recursive: true, force: true });
}

test(
  "the .deb installs into a fresh Debian 12 root and moat runs there",
  { timeout: 1_200_000 },
  async (t) => {
    const started = Date.now();
    // under the packaging lock: the image test builds the same .deb, maybe at the same time
    run("flock", [PACKAGING_LOCK, "make", "-C", ROOT, "--no-print-directory", "deb"], 900_000);
    const deps = depends(DEB);
    assert.ok(deps.includes("libbpf1") && deps.includes("iproute2"), deps.join(", "));
    // the root (scripts/deb-root.sh): maybe already made by make test while the other tiers ran
    const tarball = run("flock", [PACKAGING_LOCK, join(ROOT, "scripts/deb-root.sh")], 900_000, {
      MOAT_VERSION: VERSION,
    }).trim();
    const root = mkdtempSync("/var/tmp/moat-debroot-");
    t.after(() => removeRoot(root));
    run("tar", ["-xf", tarball, "-C", root]);
    const prepared = Date.now();
    const inRoot = (cmd: string, args: string[]) => run("chroot", [root, cmd, ...args], 120_000);

    // dpkg checks the package's Depends against what the root has: nothing else is there
    copyFileSync(DEB, join(root, "moat.deb"));
    inRoot("dpkg", ["-i", "/moat.deb"]);
    assert.equal(inRoot("dpkg-query", ["-W", "-f=${Status}", "moat"]), "install ok installed");
    // no Node, compiler or node-gyp on the target: the package carries what it runs
    const tools = spawnSync(
      "chroot",
      [root, "sh", "-c", "command -v node clang clang-19 node-gyp"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(tools.stdout, "", "the root has no node, clang or node-gyp");

    // a fresh install detects: it never blocks until someone switches it
    const policyFile = join(root, "etc/moat/policy.yaml");
    assert.match(readFileSync(policyFile, "utf8"), /^mode: detect$/m);
    assert.equal(statSync(policyFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(root, "etc/moat")).mode & 0o777, 0o700);
    // (a root without systemd: deb-systemd-helper, which would enable it, is not there)
    assert.ok(existsSync(join(root, "lib/systemd/system/moat.service")), "the unit is installed");

    assert.equal(inRoot("moat", ["--version"]).trim(), `moat ${VERSION}`);
    assert.match(inRoot("moat", ["check", "/etc/moat/policy.yaml"]), /policy\.yaml: ok/);

    // the daemon, in the root, in namespace b: port 80 allowed, 8080 blocked
    const lab = createLab(t.name);
    t.after(() => lab.cleanup());
    const pinDir = labPinDir(lab.tag, "deb-");
    t.after(() => rmSync(pinDir, { recursive: true, force: true }));
    writeFileSync(
      join(root, "etc/moat/test.yaml"),
      `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
rules:
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [80] }
`,
    );
    const servers = [80, 8080].map((port) =>
      spawn("ip", ["netns", "exec", lab.b, "nc", "-lk", lab.v4.b, String(port)], {
        stdio: "ignore",
      }),
    );
    t.after(() => servers.forEach((s) => s.kill()));
    // mounts in a mount namespace of the daemon's own: they go with it, the host never sees them
    const mounts = [
      `mount --rbind /proc ${root}/proc`,
      `mount --rbind /sys ${root}/sys`,
      `mount --rbind /dev ${root}/dev`,
    ].join(" && ");
    const daemon = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `${mounts} && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot ${root} moat run --policy /etc/moat/test.yaml --interface ${lab.ifB} --pin-dir ${pinDir}`,
    ]);
    try {
      await daemon.waitFor(/^moat is running/, 90_000);
      const probe = (port: number) =>
        status("ip", ["netns", "exec", lab.a, "nc", "-z", "-w", "2", lab.v4.b, String(port)]);
      assert.equal(probe(80), 0, "port 80 allowed");
      assert.notEqual(probe(8080), 0, "port 8080 blocked");
      // through the daemon's API (/run/moat/api.sock in the root): validate and replay run on
      // worker threads, entries of the bundle of their own
      assert.match(inRoot("moat", ["policy", "validate", "/etc/moat/policy.yaml"]), /yaml: ok$/m);
      assert.match(
        inRoot("moat", ["policy", "replay", "/etc/moat/policy.yaml"]),
        /^replayed \d+ connections? from \d+ stored events?/m,
      );
    } finally {
      daemon.kill("SIGTERM");
      assert.equal(await daemon.exited, 0, daemon.stderr.join("\n"));
    }
    assert.ok(!existsSync(pinDir), "the daemon removed its pins");
    // the history worker (a worker thread of the bundle, better-sqlite3) stored the events
    assert.ok(statSync(join(root, "var/lib/moat/history.db")).size > 0, "history written");

    // an upgrade (here the same version again) keeps the operator's policy
    writeFileSync(policyFile, "# edited\nversion: 1\nmode: prevent\n");
    inRoot("dpkg", ["-i", "/moat.deb"]);
    assert.equal(readFileSync(policyFile, "utf8"), "# edited\nversion: 1\nmode: prevent\n");

    // purge: the package's files, the policy, the history and the logs go
    inRoot("dpkg", ["--purge", "moat"]);
    for (const p of ["usr/lib/moat", "usr/bin/moat", "etc/moat", "var/lib/moat", "var/log/moat"])
      assert.ok(!existsSync(join(root, p)), `${p} left after purge`);
    t.diagnostic(
      `make deb + root: ${((prepared - started) / 1000).toFixed(1)} s, install and run: ${((Date.now() - prepared) / 1000).toFixed(1)} s`,
    );
  },
);
