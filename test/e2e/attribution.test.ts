// Attribution against real processes in fake containers: a `sleep` started inside a cgroup named
// the way each runtime names its own, with that runtime's state files in a temp root.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { Attribution } from "../../src/attribution/index.ts";
import { createContainerLab, type FakeRuntime } from "../helpers/fake-container.ts";
import { tagFor } from "../helpers/netns.ts";

const lab = createContainerLab(tagFor("attribution e2e"));
after(() => lab.cleanup());

const attribution = new Attribution({
  roots: lab.roots,
  cgroupMount: lab.mount,
  cgroupRescanIntervalMs: 0,
  containerMissRetryMs: 0,
  containerRevalidateMs: 0,
});
const SLEEP = realpathSync(
  execFileSync("sh", ["-c", "command -v sleep"], { encoding: "utf8" }).trim(),
);

const cases: { runtime: FakeRuntime; layout: "systemd" | "cgroupfs"; image: string }[] = [
  { runtime: "docker", layout: "systemd", image: "nginx:1.27" },
  { runtime: "docker", layout: "cgroupfs", image: "redis:7" },
  { runtime: "containerd", layout: "systemd", image: "docker.io/library/nginx:1.27" },
  { runtime: "containerd", layout: "cgroupfs", image: "registry.k8s.io/pause:3.9" },
  { runtime: "podman", layout: "systemd", image: "quay.io/podman/hello:latest" },
  { runtime: "podman", layout: "cgroupfs", image: "localhost/app:2" },
  { runtime: "crio", layout: "systemd", image: "docker.io/library/httpd:2" },
];

for (const { runtime, layout, image } of cases) {
  test(`${runtime} (${layout} cgroup): process facts with the container's id, name and image`, async () => {
    const c = lab.add({ runtime, layout, image, name: `web-${runtime}-${layout}` });
    const child = await c.start(["sleep", "30"]);
    const pid = child.pid ?? -1;
    const facts = attribution.processFacts(pid);
    assert.deepEqual(facts, {
      pid,
      name: "sleep",
      path: SLEEP,
      user: 0,
      userName: "root",
      cgroup: c.cgroup,
      container: { id: c.id, name: `web-${runtime}-${layout}`, image },
    });
    c.remove();
  });
}

test("cgroup id <-> path, both ways; a cgroup made after the first scan is found", () => {
  const first = lab.add({ runtime: "docker" });
  const id = attribution.cgroupIdOf(first.cgroup);
  assert.equal(typeof id, "bigint");
  assert.equal(attribution.cgroupPathOf(id ?? 0n), first.cgroup);
  assert.equal(attribution.cgroupPathOf(attribution.cgroupIdOf("/") ?? 0n), "/");
  // made after the index was built: found by the rescan a miss triggers
  const later = lab.add({ runtime: "podman" });
  const ino = statSync(join(lab.mount, later.cgroup), { bigint: true }).ino;
  assert.equal(attribution.cgroupPathOf(ino), later.cgroup);
  assert.equal(attribution.cgroupIdOf(`${lab.parent}/no-such-cgroup`), null);
  assert.equal(attribution.cgroupPathOf(2n ** 62n), null);
});

test("a container started after attribution began is picked up; a removed one is forgotten", async () => {
  const c = lab.add({ runtime: "containerd", name: "late", image: "busybox:1" });
  const child = await c.start(["sleep", "30"]);
  // the first lookup reads its state; later ones come from the cache
  const seen = attribution.processFacts(child.pid ?? -1)?.container;
  assert.deepEqual(seen, { id: c.id, name: "late", image: "busybox:1" });
  const again = lab.add({ runtime: "docker", name: "later" });
  const second = await again.start(["sleep", "30"]);
  assert.equal(attribution.processFacts(second.pid ?? -1)?.container?.name, "later");
  assert.equal(attribution.containerOf(c.cgroup)?.name, "late");
  c.remove();
  again.remove();
  assert.equal(attribution.containerOf(c.cgroup), null, "its state files are gone");
});

test("a miss is not remembered: state written after the first lookup is found", () => {
  const id = "ab".repeat(32);
  const cgroup = `${lab.parent}/docker-${id}.scope`;
  assert.equal(attribution.containerOf(cgroup), null);
  const c = lab.add({ runtime: "docker", id, name: "slow-start" });
  assert.equal(c.cgroup, cgroup);
  assert.equal(attribution.containerOf(cgroup)?.name, "slow-start");
  c.remove();
});

test("attribute(): the kernel's owner completed from /proc, and kept when the process exited", async () => {
  const c = lab.add({ runtime: "crio", name: "k" });
  const child = await c.start(["sleep", "30"]);
  const pid = child.pid ?? -1;
  const cgroupId = attribution.cgroupIdOf(c.cgroup) ?? 0n;
  const live = attribution.attribute({ pid, uid: 0, cgroupId, comm: "sleep" });
  assert.equal(live.path, SLEEP);
  assert.equal(live.container?.name, "k");
  child.kill("SIGKILL");
  await once(child, "exit");
  const gone = attribution.attribute({ pid, uid: 0, cgroupId, comm: "sleep" });
  assert.deepEqual([gone.path, gone.cgroup, gone.container?.name], ["", c.cgroup, "k"]);
  c.remove();
});

test("a process that exits, or never was, gives null", async () => {
  const c = lab.add({ runtime: "docker" });
  const child = await c.start(["sleep", "30"]);
  const pid = child.pid ?? -1;
  assert.notEqual(attribution.processFacts(pid), null);
  child.kill("SIGKILL");
  await once(child, "exit");
  assert.equal(attribution.processFacts(pid), null);
  assert.equal(attribution.processFacts(0), null);
  assert.equal(attribution.processFacts(-5), null);
  c.remove();
});

test("a process outside any container: container null", () => {
  const facts = attribution.processFacts(process.pid);
  assert.ok(facts);
  assert.equal(facts.container, null);
  assert.equal(facts.path, readlinkSync("/proc/self/exe"));
});

test("the fake container's network namespace: the command runs in it, and it goes on cleanup", async () => {
  const c = lab.add({ runtime: "podman", netns: true });
  const child = await c.start(["sleep", "30"]);
  const ns = statSync(`/run/netns/${c.netns ?? ""}`).ino;
  assert.equal(statSync(`/proc/${child.pid ?? -1}/ns/net`).ino, ns);
  assert.notEqual(statSync("/proc/self/ns/net").ino, ns);
  assert.equal(attribution.processFacts(child.pid ?? -1)?.container?.id, c.id);
  c.remove();
  assert.equal(existsSync(`/run/netns/${c.netns ?? ""}`), false);
  assert.equal(existsSync(c.cgroupDir), false);
  assert.equal(child.signalCode ?? (await once(child, "exit"))[1], "SIGKILL");
});
