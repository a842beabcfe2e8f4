// Container runtimes' state files another user controls: rootless podman keeps its state in each
// user's home, where the user can put a FIFO (which would freeze the daemon's event loop in
// open()) or claim any container id. A state file must be a regular file under a size limit,
// and a home's state names only containers in that same user's cgroups (user-UID.slice).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ContainerDirectory } from "../../src/attribution/index.ts";
import { NODE, ROOT } from "../helpers/paths.ts";
import { scratchDir } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;
const ID = "4b".repeat(32);

/** A home of `nobody` whose rootless podman storage lists ID as "mine". */
function nobodyHome(base: string): string {
  const home = join(base, "home");
  const file = join(home, ".local/share/containers/storage/overlay-containers/containers.json");
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify([{ id: ID, names: ["mine"], image: "i" }]));
  for (const p of [home, join(home, ".local"), file]) chownSync(p, NOBODY, NOBODY);
  return home;
}

test("a FIFO in place of a state file does not block the reader", (t) => {
  const base = scratchDir(t, "containers");
  const fifo = join(base, "containers.json");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
  const script = `
    import { readJson } from ${JSON.stringify(join(ROOT, "src/attribution/containers/state-file.ts"))};
    console.log(String(readJson(${JSON.stringify(fifo)})));`;
  const r = spawnSync(
    NODE,
    ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script],
    {
      encoding: "utf8",
      timeout: 10_000,
    },
  );
  assert.equal(r.signal, null, "the read blocked on the FIFO");
  assert.equal(r.stdout.trim(), "undefined", r.stderr);
  // an oversized file is not read either
  const big = join(base, "big.json");
  writeFileSync(big, `[${" ".repeat(80 * 2 ** 20)}]`);
  const b = spawnSync(
    NODE,
    [
      "--disable-warning=ExperimentalWarning",
      "--input-type=module",
      "-e",
      script.replace(fifo, big),
    ],
    {
      encoding: "utf8",
      timeout: 30_000,
    },
  );
  assert.equal(b.stdout.trim(), "undefined", b.stderr);
});

test("a home's rootless state names only containers in that user's own cgroups", (t) => {
  const base = scratchDir(t, "containers");
  const home = nobodyHome(base);
  // stands in for the cgroup2 mount: each user's cgroups are theirs, as systemd delegates them
  const cgroups = join(base, "cgroup");
  const dir = new ContainerDirectory({
    roots: { docker: [], containerd: [], containersStorage: [], homes: () => [home] },
    cgroupMount: cgroups,
    missRetryMs: 0,
    revalidateMs: 0,
  });
  const user = (uid: number) =>
    `/user.slice/user-${uid}.slice/user@${uid}.service/app.slice/libpod-${ID}.scope`;
  mkdirSync(join(cgroups, `machine.slice/libpod-${ID}.scope`), { recursive: true });
  for (const uid of [1000, NOBODY]) {
    mkdirSync(join(cgroups, user(uid)), { recursive: true });
    chownSync(join(cgroups, user(uid)), uid, uid);
  }
  assert.equal(dir.ofCgroup(`/machine.slice/libpod-${ID}.scope`), null, "a system container");
  assert.equal(dir.ofCgroup(user(1000)), null, "another user's container");
  assert.deepEqual(dir.ofCgroup(user(NOBODY)), { id: ID, name: "mine", image: "i" });
});
