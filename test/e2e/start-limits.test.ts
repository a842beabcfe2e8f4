// A daemon that cannot start for a limit or a missing piece of the machine says what and how to
// mend it: too few open files (a low `ulimit -n`) fails loading the programs with EMFILE; a policy
// with attach.cgroup where no cgroup v2 hierarchy is mounted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MOAT } from "../helpers/paths.ts";
import { cgroup2Mount } from "../../src/datapath/prerequisites.ts";

test("too few open files: the error says to raise the limit", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-limits-"));
  const pins = `/sys/fs/bpf/moat-limits-${process.pid}`;
  try {
    writeFileSync(
      join(dir, "policy.yaml"),
      "version: 1\nmode: detect\ndefaults: { ingress: allow, egress: allow }\n",
    );
    const r = spawnSync(
      "prlimit",
      [
        "--nofile=64",
        MOAT,
        "run",
        "--policy",
        join(dir, "policy.yaml"),
        "--pin-dir",
        pins,
        "--api",
        `unix:${join(dir, "api.sock")}`,
        "--history",
        join(dir, "history.db"),
        "--decisions",
        join(dir, "decisions.json"),
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    assert.notEqual(r.status, 0, "the daemon does not start");
    assert.match(r.stderr, /Too many open files \(EMFILE\)/);
    assert.match(r.stderr, /raise the open files limit \(ulimit -n/, r.stderr);
  } finally {
    rmSync(pins, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test("no cgroup v2 hierarchy for attach.cgroup: the error says how to mount it", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-limits-"));
  const mount = cgroup2Mount();
  assert.ok(mount, "this machine has a cgroup v2 hierarchy to hide");
  try {
    writeFileSync(
      join(dir, "policy.yaml"),
      "version: 1\nmode: detect\nattach: { cgroup: / }\ndefaults: { ingress: allow, egress: allow }\n",
    );
    // a mount namespace of its own, where the hierarchy is unmounted
    const run = [
      MOAT,
      "run",
      "--policy",
      join(dir, "policy.yaml"),
      "--pin-dir",
      `/sys/fs/bpf/moat-limits-cg-${process.pid}`,
      "--api",
      `unix:${join(dir, "api.sock")}`,
      "--history",
      join(dir, "history.db"),
      "--decisions",
      join(dir, "decisions.json"),
    ];
    const r = spawnSync(
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        `umount -l ${mount} && exec "$@"`,
        "sh",
        ...run,
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    assert.notEqual(r.status, 0, "the daemon does not start");
    assert.match(r.stderr, /mount it with 'mount -t cgroup2 none \/sys\/fs\/cgroup'/, r.stderr);
  } finally {
    rmSync(`/sys/fs/bpf/moat-limits-cg-${process.pid}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
