// Fake containers for tests: a cgroup directory named the way Docker, containerd, podman or CRI-O
// name theirs, the runtime's state files in a temp state root, and optionally a network
// namespace. Commands run inside the cgroup (and namespace) the way a runtime starts them.
//
// Everything lives under a test-owned parent, <cgroup2>/moat-test-<tag>.slice/. cleanup() kills
// the processes the lab started (by PID, and any children they left in its own cgroups), removes
// the cgroups, namespaces and state files. It runs on process exit too, and never throws.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { findCgroup2Mount } from "../../src/attribution/cgroup-mount.ts";
import type { RuntimeRoots } from "../../src/attribution/containers/directory.ts";
import { sweepStale } from "./cgroup-run.ts";
import { labNamespace } from "./netns.ts";

export type FakeRuntime = "docker" | "containerd" | "podman" | "crio";

export interface FakeContainerSpec {
  runtime: FakeRuntime;
  /** Default: "<runtime>-<n>". */
  name?: string;
  /** Default: "moat-test/<runtime>:1". */
  image?: string;
  /** 64 hex; default random. */
  id?: string;
  /** How the runtime names the cgroup: a systemd scope (default) or its cgroupfs layout. */
  layout?: "systemd" | "cgroupfs";
  /** Make a network namespace /run/netns/<netns> for it (default false). */
  netns?: boolean;
}

export interface FakeContainer {
  runtime: FakeRuntime;
  id: string;
  name: string;
  image: string;
  /** The cgroup path from the cgroup2 root, as /proc/PID/cgroup shows it. */
  cgroup: string;
  /** The cgroup's directory. */
  cgroupDir: string;
  /** The netns name (ip netns), if one was made. */
  netns?: string;
  /** Start a command inside the container's cgroup (and netns); resolves once it runs there. */
  start(argv: string[], options?: SpawnOptions): Promise<ChildProcess>;
  /** Kill what was started in it, remove its cgroup, namespace and state. */
  remove(): void;
}

export interface ContainerLab {
  tag: string;
  /** The cgroup2 mount, e.g. /sys/fs/cgroup/unified. */
  mount: string;
  /** The parent cgroup path, "/moat-test-<tag>-<pid>.slice". */
  parent: string;
  /** Temp dir with docker/, containerd/ and storage/ state roots. */
  stateRoot: string;
  /** What to give Attribution's `roots` option so it reads this lab's state. */
  roots: RuntimeRoots;
  add(spec: FakeContainerSpec): FakeContainer;
  cleanup(): void;
}

const SHELL = realpathSync("/bin/sh");

/** A lab of fake containers; `tag` should come from the test's name (tagFor in netns.ts). */
export function createContainerLab(tag: string): ContainerLab {
  const mount = findCgroup2Mount()?.mountPoint;
  if (!mount) throw new Error("no cgroup2 hierarchy is mounted");
  sweepStale(); // leftovers of earlier, killed runs
  const parent = `/moat-test-${tag}-${process.pid}.slice`;
  mkdirSync(join(mount, parent));
  const stateRoot = mkdtempSync(join(tmpdir(), `moat-containers-${tag}-`));
  const roots: Required<Omit<RuntimeRoots, "homes">> = {
    docker: [join(stateRoot, "docker")],
    containerd: [join(stateRoot, "containerd")],
    containersStorage: [join(stateRoot, "storage")],
  };
  const containers: FakeContainer[] = [];
  let count = 0;
  const lab: ContainerLab = {
    tag,
    mount,
    parent,
    stateRoot,
    roots: { ...roots, homes: () => [] },
    add(spec) {
      count++;
      const c = makeContainer(lab, spec, count);
      containers.push(c);
      return c;
    },
    cleanup() {
      for (const c of containers.splice(0)) c.remove();
      removeCgroupTree(join(mount, parent), new Set());
      rmSync(stateRoot, { recursive: true, force: true });
      process.removeListener("exit", lab.cleanup);
    },
  };
  process.once("exit", lab.cleanup);
  return lab;
}

function makeContainer(lab: ContainerLab, spec: FakeContainerSpec, n: number): FakeContainer {
  const id = spec.id ?? randomBytes(32).toString("hex");
  const name = spec.name ?? `${spec.runtime}-${n}`;
  const image = spec.image ?? `moat-test/${spec.runtime}:1`;
  const cgroup = `${lab.parent}/${cgroupName(spec.runtime, spec.layout ?? "systemd", id)}`;
  const cgroupDir = join(lab.mount, cgroup);
  mkdirSync(cgroupDir, { recursive: true });
  const state = writeState(lab.stateRoot, spec.runtime, { id, name, image });
  const netns = spec.netns ? labNamespace(lab.tag, `c${n}`) : undefined;
  if (netns) {
    spawnSync("ip", ["netns", "del", netns], { stdio: "ignore" });
    run("ip", ["netns", "add", netns]);
    run("ip", ["-n", netns, "link", "set", "lo", "up"]);
  }
  const started = new Set<ChildProcess>();
  const container: FakeContainer = {
    runtime: spec.runtime,
    id,
    name,
    image,
    cgroup,
    cgroupDir,
    ...(netns ? { netns } : {}),
    async start(argv, options = {}) {
      // the shell moves itself into the cgroup, then becomes the command: it runs there from
      // its first instruction, as under a runtime
      const inner = ["sh", "-c", 'echo $$ > "$0"; exec "$@"', join(cgroupDir, "cgroup.procs")];
      const [cmd, ...args] = netns
        ? ["nsenter", `--net=/run/netns/${netns}`, ...inner, ...argv]
        : [...inner, ...argv];
      const child = spawn(cmd ?? "sh", [...args], { stdio: "ignore", ...options });
      started.add(child);
      child.once("exit", () => started.delete(child));
      await settled(child, cgroup, argv[0] ?? "");
      return child;
    },
    remove() {
      const pids = [...started].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
      removeCgroupTree(cgroupDir, new Set(pids));
      started.clear();
      state.remove();
      if (netns) spawnSync("ip", ["netns", "del", netns], { stdio: "ignore" });
    },
  };
  return container;
}

function cgroupName(runtime: FakeRuntime, layout: "systemd" | "cgroupfs", id: string): string {
  if (layout === "cgroupfs") {
    if (runtime === "docker") return `docker/${id}`;
    if (runtime === "podman") return `libpod_parent/libpod-${id}`;
    return `kubepods/besteffort/pod${id.slice(0, 8)}/${runtime === "crio" ? `crio-${id}` : id}`;
  }
  const prefix = { docker: "docker", containerd: "cri-containerd", podman: "libpod", crio: "crio" };
  return `${prefix[runtime]}-${id}.scope`;
}

interface Meta {
  id: string;
  name: string;
  image: string;
}

/** Write the runtime's own state for the container; returns how to take it back. */
function writeState(root: string, runtime: FakeRuntime, m: Meta): { remove(): void } {
  const put = (file: string, doc: unknown) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(doc));
  };
  const storage = join(root, "storage");
  switch (runtime) {
    case "docker": {
      const dir = join(root, "docker", "containers", m.id);
      put(join(dir, "config.v2.json"), {
        ID: m.id,
        Name: `/${m.name}`,
        Image: `sha256:${m.id}`,
        Config: { Image: m.image, Hostname: m.id.slice(0, 12) },
      });
      return { remove: () => rmSync(dir, { recursive: true, force: true }) };
    }
    case "containerd": {
      const dir = join(root, "containerd", "k8s.io", m.id);
      put(join(dir, "config.json"), {
        ociVersion: "1.1.0",
        annotations: {
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.container-name": m.name,
          "io.kubernetes.cri.image-name": m.image,
        },
      });
      return { remove: () => rmSync(dir, { recursive: true, force: true }) };
    }
    case "crio": {
      const dir = join(storage, "overlay-containers", m.id);
      put(join(dir, "userdata", "config.json"), {
        ociVersion: "1.0.2",
        annotations: {
          "io.kubernetes.container.name": m.name,
          "io.kubernetes.cri-o.ContainerName": `k8s_${m.name}_pod_default_0`,
          "io.kubernetes.cri-o.ImageName": m.image,
        },
      });
      return { remove: () => rmSync(dir, { recursive: true, force: true }) };
    }
    case "podman": {
      const imageId = `img${m.id.slice(3)}`;
      const containers = join(storage, "overlay-containers", "containers.json");
      const images = join(storage, "overlay-images", "images.json");
      edit(containers, (list) => [...list, { id: m.id, names: [m.name], image: imageId }]);
      edit(images, (list) => [...list, { id: imageId, names: [m.image] }]);
      return {
        remove: () => {
          edit(containers, (list) => list.filter((c) => field(c, "id") !== m.id));
          edit(images, (list) => list.filter((i) => field(i, "id") !== imageId));
        },
      };
    }
  }
}

/** Read-modify-write a JSON list the way containers/storage rewrites it (whole file). */
function edit(file: string, change: (list: unknown[]) => unknown[]): void {
  let list: unknown[] = [];
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (Array.isArray(parsed)) list = parsed;
  } catch {
    // absent: a new list
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(change(list)));
}

const field = (obj: unknown, key: string): unknown =>
  obj !== null && typeof obj === "object" ? (obj as Record<string, unknown>)[key] : undefined;

/** Wait until the child sits in the cgroup and (unless it runs a shell) has exec'd its command. */
async function settled(child: ChildProcess, cgroup: string, command: string): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  const isShell = command === "sh" || command.endsWith("/sh");
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${command} exited before it ran in ${cgroup}`);
    try {
      const inCgroup = readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(`0::${cgroup}\n`);
      const execd = isShell || readlinkSync(`/proc/${pid}/exe`) !== SHELL;
      if (inCgroup && execd) return;
    } catch {
      // not there yet, or gone: the exit check above tells
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${command} (pid ${pid}) did not start in ${cgroup}`);
}

/**
 * Kill `pids` (what we started) and whatever else sits in this test-owned subtree (their
 * children), then remove the directories, deepest first. Never throws.
 */
function removeCgroupTree(dir: string, pids: Set<number>): void {
  if (!existsSync(dir)) return;
  for (const pid of pids) kill(pid);
  const deadline = Date.now() + 3000;
  for (;;) {
    const left = procsUnder(dir);
    if (left.length === 0 || Date.now() > deadline) break;
    for (const pid of left) kill(pid);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  for (const d of dirsUnder(dir).reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // still busy: reported by the next run's leftover removal
    }
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** The directory and every cgroup below it, parents first. */
function dirsUnder(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    try {
      const here = out[i] ?? "";
      for (const e of readdirEntries(here)) out.push(join(here, e));
    } catch {
      // gone
    }
  }
  return out;
}

function readdirEntries(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

function procsUnder(dir: string): number[] {
  return dirsUnder(dir).flatMap((d) => {
    try {
      return readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.error?.message}`);
}

/** One fake container in its own lab; cleanup() removes both. */
export function createFakeContainer(
  tag: string,
  spec: FakeContainerSpec,
): FakeContainer & { lab: ContainerLab; cleanup(): void } {
  const lab = createContainerLab(tag);
  try {
    const c = lab.add(spec);
    return { ...c, lab, cleanup: () => lab.cleanup() };
  } catch (err) {
    lab.cleanup();
    throw err;
  }
}
