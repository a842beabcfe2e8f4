// `make install` / `make uninstall` (scripts/install.sh) into a scratch DESTDIR, never the host:
// the tree it puts, a fresh install that detects, an edited policy kept over an upgrade, and an
// uninstall that removes what install put (the policy only with PURGE=1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ROOT } from "../helpers/paths.ts";

const BUNDLE_URL = /new URL\("([^"]+)", import\.meta\.url\)/g;

function installer(action: string, env: Record<string, string>) {
  const r = spawnSync(join(ROOT, "scripts/install.sh"), [action], {
    encoding: "utf8",
    env: { ...process.env, NODE_BIN: process.execPath, ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test("make install passes DESTDIR and PREFIX to the installer", () => {
  const r = spawnSync("make", ["-n", "install", "DESTDIR=/stage", "PREFIX=/opt/moat"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /DESTDIR="\/stage" PREFIX="\/opt\/moat" .*scripts\/install\.sh install/);
});

test("install, upgrade and uninstall in a DESTDIR", () => {
  const dest = mkdtempSync(join(tmpdir(), "moat-install-"));
  const at = (p: string) => join(dest, p);
  try {
    const out = installer("install", { DESTDIR: dest });
    assert.match(out, /policy\.yaml installed \(mode: detect\)/);
    const lib = "usr/lib/moat";
    for (const p of [
      `${lib}/build/dist/cli-main.mjs`,
      `${lib}/build/cli/main.mjs`,
      `${lib}/build/bpf/moat.bpf.o`,
      `${lib}/build/bpf/map_count.bpf.o`,
      `${lib}/build/bpf/file_ids.bpf.o`,
      `${lib}/native/build/Release/moat_native.node`,
      `${lib}/node/bin/node`,
      `${lib}/node_modules/yaml/package.json`,
      `${lib}/node_modules/better-sqlite3/package.json`,
      `${lib}/data/doh-resolvers.txt`,
      "lib/systemd/system/moat.service",
      "etc/logrotate.d/moat",
      "usr/share/man/man1/moat.1.gz",
      "usr/share/man/man1/moat-policy.1.gz",
      "usr/share/bash-completion/completions/moat",
      "usr/share/zsh/vendor-completions/_moat",
    ])
      assert.ok(existsSync(at(p)), `${p} is missing`);
    // development packages stay behind
    assert.ok(!existsSync(at(`${lib}/node_modules/@eslint`)), "dev packages installed");
    const launcher = readFileSync(at("usr/bin/moat"), "utf8");
    assert.match(launcher, /^main=\/usr\/lib\/moat\/build\/dist\/cli-main\.mjs$/m);
    assert.match(
      launcher,
      /^if \[ "\$1" != run \] && \[ -f \/usr\/lib\/moat\/build\/cli\/main\.mjs \]; then main=\/usr\/lib\/moat\/build\/cli\/main\.mjs; fi$/m,
    );
    assert.match(launcher, /^exec \/usr\/lib\/moat\/node\/bin\/node .* "\$main" "\$@"$/m);
    assert.equal(statSync(at("usr/bin/moat")).mode & 0o777, 0o755);
    assert.match(
      readFileSync(at("lib/systemd/system/moat.service"), "utf8"),
      /^ExecStart=\/usr\/bin\/moat run --policy \/etc\/moat\/policy\.yaml$/m,
    );
    assert.match(readFileSync(at("etc/logrotate.d/moat"), "utf8"), /--signal=SIGUSR1/);
    const policy = at("etc/moat/policy.yaml");
    assert.equal(statSync(policy).mode & 0o777, 0o600);
    assert.match(readFileSync(policy, "utf8"), /^mode: detect$/m);
    // the installed tree runs on its own: its Node, its packages, the policy it installed
    const check = spawnSync(
      at(`${lib}/node/bin/node`),
      [at(`${lib}/build/dist/cli-main.mjs`), "check", policy],
      { encoding: "utf8" },
    );
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /policy\.yaml: ok/);
    // and so does its CLI bundle, when `make build` made one (it runs without src/)
    if (existsSync(join(ROOT, "build/cli/BUILT"))) {
      const bundled = spawnSync(
        at(`${lib}/node/bin/node`),
        [at(`${lib}/build/cli/main.mjs`), "check", policy],
        { encoding: "utf8" },
      );
      assert.equal(bundled.status, 0, bundled.stderr);
      assert.match(bundled.stdout, /policy\.yaml: ok/);
    }

    // every file the bundle opens by its own URL (workers, the BPF object, the addon, the web
    // console, data files) is in the installed tree; no TypeScript is left to strip
    const dist = at(`${lib}/build/dist`);
    const refs = new Set<string>();
    for (const f of readdirSync(dist))
      for (const m of readFileSync(join(dist, f), "utf8").matchAll(BUNDLE_URL)) refs.add(m[1]!);
    for (const w of [
      "host-accept-worker",
      "observe-history-worker",
      "daemon-replay-worker",
      "daemon-suggest-worker",
    ])
      assert.ok(refs.has(`./${w}.mjs`), `the bundle starts ${w}`);
    for (const r of refs) assert.ok(existsSync(resolve(dist, r)), `${r} (from build/dist) missing`);
    assert.ok(!existsSync(at(`${lib}/src`)), "sources installed");

    // an upgrade keeps the operator's policy
    writeFileSync(policy, "# edited\nmode: prevent\n");
    assert.match(installer("install", { DESTDIR: dest }), /policy\.yaml kept/);
    assert.equal(readFileSync(policy, "utf8"), "# edited\nmode: prevent\n");

    installer("uninstall", { DESTDIR: dest });
    for (const p of [
      lib,
      "usr/bin/moat",
      "lib/systemd/system/moat.service",
      "etc/logrotate.d/moat",
      "usr/share/man/man1/moat.1.gz",
      "usr/share/bash-completion/completions/moat",
      "usr/share/zsh/vendor-completions/_moat",
    ])
      assert.ok(!existsSync(at(p)), `${p} stayed`);
    assert.ok(existsSync(policy), "uninstall removed the policy");
    installer("uninstall", { DESTDIR: dest, PURGE: "1" });
    assert.ok(!existsSync(at("etc/moat")), "PURGE=1 kept /etc/moat");
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});
