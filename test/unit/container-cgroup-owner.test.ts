// A user with a delegated cgroup subtree (user@UID.service, or a Delegate=yes service with User=)
// can make a cgroup named like any runtime's, with a real system container's id. Only a cgroup
// directory root owns names a container from the system runtimes' state; one a user owns names
// only containers in that user's own state (rootless podman in their home).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Attribution } from "../../src/attribution/index.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";

const NOBODY = 65534;
const ID = "ab".repeat(32);
/** In nobody's rootless podman state only. */
const MINE = "cd".repeat(32);
const RUNTIMES = ["docker", "cri-containerd", "libpod", "crio"] as const;
const USER_ROOT = `user.slice/user-${NOBODY}.slice/user@${NOBODY}.service`;

let cg: TestCgroup;
let state: string;
let home: string;

function put(file: string, doc: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(doc));
}

/** A cgroup below the test's, owned as a delegated subtree is (the directory and its files). */
function cgroupOwnedBy(path: string, uid: number): string {
  const dir = join(cg.dir, path);
  mkdirSync(dir, { recursive: true });
  for (const f of ["", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"])
    chownSync(join(dir, f), uid, uid);
  return `${cg.cgroup}/${path}`;
}

const attribution = (): Attribution =>
  new Attribution({
    roots: {
      docker: [join(state, "docker")],
      containerd: [join(state, "containerd")],
      containersStorage: [join(state, "storage")],
      homes: () => [home],
    },
    containerMissRetryMs: 0,
    containerRevalidateMs: 60_000,
  });

before(() => {
  cg = testCgroup("cgowner");
  state = mkdtempSync(join(tmpdir(), `moat-cgowner-${process.pid}-`));
  chmodSync(state, 0o755);
  // the system runtimes' state: one container "web" with id ID in each
  put(join(state, "docker/containers", ID, "config.v2.json"), {
    Name: "/web",
    Config: { Image: "nginx:1.27" },
  });
  put(join(state, "containerd/k8s.io", ID, "config.json"), {
    annotations: {
      "io.kubernetes.cri.container-name": "web",
      "io.kubernetes.cri.image-name": "nginx:1.27",
    },
  });
  put(join(state, "storage/overlay-containers/containers.json"), [
    { id: ID, names: ["web"], image: "i" },
  ]);
  put(join(state, "storage/overlay-containers", ID, "userdata/config.json"), {
    annotations: {
      "io.kubernetes.container.name": "web",
      "io.kubernetes.cri-o.ImageName": "nginx:1.27",
    },
  });
  // nobody's rootless podman: its own container MINE
  home = join(state, "home");
  const file = join(home, ".local/share/containers/storage/overlay-containers/containers.json");
  put(file, [{ id: MINE, names: ["mine"], image: "i" }]);
  for (const p of [home, join(home, ".local"), file]) chownSync(p, NOBODY, NOBODY);
  // delegated subtrees, as systemd hands them to the user
  cgroupOwnedBy(USER_ROOT, NOBODY);
  cgroupOwnedBy("ci.service", NOBODY);
});

after(() => {
  cg?.remove();
  if (state) rmSync(state, { recursive: true, force: true });
});

test("a user's cgroup named like a system container's is not that container", () => {
  const a = attribution();
  for (const prefix of RUNTIMES) {
    const name = `${prefix}-${ID}.scope`;
    const real = cgroupOwnedBy(`system.slice/${name}`, 0);
    const inSlice = cgroupOwnedBy(`${USER_ROOT}/app.slice/${name}`, NOBODY);
    const inService = cgroupOwnedBy(`ci.service/${name}`, NOBODY);
    // the real one first, so a cached answer for it would be handed to the others
    assert.equal(a.containerOf(real)?.name, "web", real);
    assert.equal(a.containerOf(`${real}/init.scope`)?.name, "web", "a sub-cgroup of it");
    assert.equal(a.containerOf(inSlice), null, inSlice);
    assert.equal(a.containerOf(inService), null, inService);
    assert.equal(a.containerOf(`${real}/init.scope`)?.name, "web", "still, after the users'");
  }
  // the bare-id layouts (cgroupfs driver)
  assert.equal(a.containerOf(cgroupOwnedBy(`docker/${ID}`, 0))?.name, "web");
  assert.equal(a.containerOf(cgroupOwnedBy(`ci.service/docker/${ID}`, NOBODY)), null);
  assert.equal(a.containerOf(cgroupOwnedBy(`ci.service/kubepods/pod1/${ID}`, NOBODY)), null);
});

test("the user's cgroup first: its miss is not reused for root's", () => {
  const a = attribution();
  const name = `docker-${ID}.scope`;
  const fake = cgroupOwnedBy(`ci.service/x/${name}`, NOBODY);
  assert.equal(a.containerOf(fake), null);
  assert.equal(a.containerOf(cgroupOwnedBy(`machine.slice/${name}`, 0))?.name, "web");
  assert.equal(a.containerOf(fake), null);
});

test("a user's own cgroup names the containers of that user's own state", () => {
  const a = attribution();
  const name = `libpod-${MINE}.scope`;
  assert.deepEqual(a.containerOf(cgroupOwnedBy(`${USER_ROOT}/user.slice/${name}`, NOBODY)), {
    id: MINE,
    name: "mine",
    image: "i",
  });
  // a Delegate=yes service run as that user
  assert.equal(a.containerOf(cgroupOwnedBy(`ci.service/${name}`, NOBODY))?.name, "mine");
  // root's cgroup is not named by a user's home
  assert.equal(a.containerOf(cgroupOwnedBy(`machine.slice/${name}`, 0)), null);
  // nor is another user's cgroup
  assert.equal(a.containerOf(cgroupOwnedBy(`other.service/${name}`, 4242)), null);
});

test("a cgroup that does not exist (or cannot be checked) names no system container", () => {
  const a = attribution();
  assert.equal(a.containerOf(`${cg.cgroup}/gone.slice/docker-${ID}.scope`), null);
});
