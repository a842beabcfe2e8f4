// The pure parts of attribution: container detection from cgroup paths, mountinfo, /etc/passwd,
// and the runtimes' state files as they look on disk (written to a temp dir).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  ContainerDirectory,
  containerRefOf,
  parseMountinfo,
  UserTable,
} from "../../src/attribution/index.ts";
import { cgroupV2 } from "../../src/attribution/proc.ts";

const ID = "3f2a9c0e1b7d4a5f8e6c2b1a0d9f8e7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

test("container detection from cgroup paths, per runtime and layout", () => {
  const table: [string, string[] | null][] = [
    [`/system.slice/docker-${ID}.scope`, ["docker"]],
    [`/docker/${ID}`, ["docker"]],
    [`/system.slice/docker-${ID}.scope/init.scope`, ["docker"]],
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-${ID}.scope`,
      ["containerd"],
    ],
    [`/kubepods/besteffort/pod12/${ID}`, ["containerd", "docker", "crio"]],
    [`/machine.slice/libpod-${ID}.scope`, ["podman"]],
    [`/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, ["podman"]],
    [`/libpod_parent/libpod-${ID}`, ["podman"]],
    [`/kubepods.slice/kubepods-pod1.slice/crio-${ID}.scope`, ["crio"]],
    // monitors, not containers
    [`/machine.slice/libpod-conmon-${ID}.scope`, null],
    [`/system.slice/crio-conmon-${ID}.scope`, null],
    // a bare id outside docker/ or kubepods is not trusted to be a container
    [`/system.slice/${ID}`, null],
    [`/system.slice/docker-${ID.slice(1)}.scope`, null],
    ["/user.slice/user-1000.slice/session-2.scope", null],
    ["/", null],
  ];
  for (const [path, runtimes] of table) {
    const ref = containerRefOf(path);
    assert.deepEqual(ref && ref.runtimes, runtimes, path);
    if (ref) assert.equal(ref.id, ID, path);
  }
});

test("mountinfo: the cgroup2 mount, with escaped characters; none on a v1-only host", () => {
  const hybrid = [
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw",
  ].join("\n");
  assert.deepEqual(parseMountinfo(hybrid), { mountPoint: "/sys/fs/cgroup/unified", root: "/" });
  assert.deepEqual(parseMountinfo("50 1 0:40 /x /mnt/cg\\0402 rw - cgroup2 none rw\n"), {
    mountPoint: "/mnt/cg 2",
    root: "/x",
  });
  assert.equal(parseMountinfo(hybrid.split("\n").slice(0, 2).join("\n")), null);
});

test("/proc/PID/cgroup: the 0:: line", () => {
  assert.equal(
    cgroupV2("1:name=systemd:/a\n0::/system.slice/x.service\n"),
    "/system.slice/x.service",
  );
  assert.equal(cgroupV2("0::/\n"), "/");
  assert.equal(cgroupV2("4:memory:/x\n"), "/");
});

const temp = mkdtempSync(join(tmpdir(), "moat-attribution-"));
test.after(() => rmSync(temp, { recursive: true, force: true }));

const put = (file: string, text: string) => {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
};

test("/etc/passwd: names and uids both ways; first entry wins; re-read when it changes", () => {
  const file = join(temp, "passwd");
  put(
    file,
    "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\ntoor:x:0:0::/:/bin/sh\n# junk\n",
  );
  const users = new UserTable(file);
  assert.equal(users.nameOf(0), "root");
  assert.equal(users.nameOf(1000), "alice");
  assert.equal(users.nameOf(4242), null);
  assert.equal(users.uidOf("toor"), 0);
  assert.deepEqual(users.homes(), ["/root", "/home/alice"]);
  put(file, "bob:x:4242:4242::/home/bob:/bin/sh\n");
  // a different mtime: the write above may land in the same millisecond, so set it apart
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.equal(users.nameOf(4242), "bob");
  assert.equal(users.nameOf(0), null);
  assert.equal(new UserTable(join(temp, "missing")).nameOf(0), null);
});

test("runtime state files: names and images as each runtime records them; partial files are misses", () => {
  const root = join(temp, "state");
  const dir = new ContainerDirectory({
    roots: {
      docker: [join(root, "docker")],
      containerd: [join(root, "containerd")],
      containersStorage: [join(root, "storage")],
    },
    // stands in for the cgroup2 mount: root owns these cgroups, as a system runtime's are
    cgroupMount: join(root, "cgroup"),
    missRetryMs: 0,
    revalidateMs: 0,
  });
  const id = (c: string) => c.repeat(64);
  for (const c of [
    `docker/${id("a")}`,
    `x/cri-containerd-${id("b")}.scope`,
    `machine.slice/libpod-${id("c")}.scope`,
    `machine.slice/libpod-${id("d")}.scope`,
    `k/crio-${id("e")}.scope`,
  ])
    mkdirSync(join(root, "cgroup", c), { recursive: true });
  put(
    join(root, "docker/containers", id("a"), "config.v2.json"),
    JSON.stringify({ Name: "/web", Image: "sha256:ff", Config: { Image: "nginx:1.27" } }),
  );
  put(
    join(root, "containerd/moby", id("b"), "config.json"),
    JSON.stringify({ annotations: { "nerdctl/name": "n1" } }),
  );
  put(
    join(root, "storage/overlay-containers/containers.json"),
    JSON.stringify([
      { id: id("c"), names: ["pod-app"], image: "i1", metadata: '{"image-name":"quay.io/a/b:3"}' },
      { id: id("d"), names: ["plain"], image: "i2" },
    ]),
  );
  put(
    join(root, "storage/overlay-images/images.json"),
    JSON.stringify([{ id: "i2", names: ["localhost/plain:1"] }]),
  );
  put(
    join(root, "storage/overlay-containers", id("e"), "userdata/config.json"),
    '{"annotations": {',
  );
  assert.deepEqual(dir.ofCgroup(`/docker/${id("a")}`), {
    id: id("a"),
    name: "web",
    image: "nginx:1.27",
  });
  assert.deepEqual(dir.ofCgroup(`/x/cri-containerd-${id("b")}.scope`), {
    id: id("b"),
    name: "n1",
    image: "",
  });
  assert.deepEqual(dir.ofCgroup(`/machine.slice/libpod-${id("c")}.scope`), {
    id: id("c"),
    name: "pod-app",
    image: "quay.io/a/b:3",
  });
  assert.equal(dir.ofCgroup(`/machine.slice/libpod-${id("d")}.scope`)?.image, "localhost/plain:1");
  // a half-written file is a miss, found once it is complete
  assert.equal(dir.ofCgroup(`/k/crio-${id("e")}.scope`), null);
  put(
    join(root, "storage/overlay-containers", id("e"), "userdata/config.json"),
    JSON.stringify({
      annotations: { "io.kubernetes.container.name": "c", "io.kubernetes.cri-o.ImageName": "i:1" },
    }),
  );
  assert.deepEqual(dir.ofCgroup(`/k/crio-${id("e")}.scope`), {
    id: id("e"),
    name: "c",
    image: "i:1",
  });
});
