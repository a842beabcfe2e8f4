// A real Docker for tests: Debian's dockerd with every root of its own under a temp dir
// (--data-root, --exec-root, --pidfile, -H unix://), --iptables=false --bridge=none and no
// ip_forward change, so the host's Docker defaults and network settings are left alone. Images are
// `docker import`s of a busybox-static rootfs; containers run with --network host, i.e. in
// dockerd's network namespace (`netns`, when given, is where dockerd is started).
//
// close() removes the containers, stops dockerd by its PID (and, if it had to be killed, what it
// left running, found by the temp dir in their command line), unmounts what it mounted under the
// temp dir, removes the cgroups and /run directories it made and the temp dir. It never throws,
// runs on process exit too, and returns what it could not remove.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  copyFileSync,
  writeFileSync,
} from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const DOCKERD = "/usr/sbin/dockerd";
/** Debian's client, of the daemon's version (PATH may find another one first). */
export const DOCKER = "/usr/bin/docker";
export const BUSYBOX = "/bin/busybox";

const INSTALL =
  "install Debian's docker.io and busybox-static (scripts/setup-apt.sh installs scripts/apt-test.txt)";

/** Directories a dockerd and its containerd make outside their roots, whatever the flags. */
const HOST_DIRS = ["/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd"];

export interface DockerRun {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RealContainer {
  /** The full 64-hex id. */
  id: string;
  name: string;
  image: string;
  /** The pid of its first process, on the host. */
  pid: number;
  /** Its cgroup v2 path, from the `0::` line of /proc/PID/cgroup. */
  cgroup: string;
}

export interface DockerLab {
  dir: string;
  /** dockerd --data-root: config.v2.json of each container is under <dataRoot>/containers/<id>/. */
  dataRoot: string;
  socket: string;
  /** dockerd's pid. */
  pid: number;
  /** `docker -H unix://<socket> ...args`. */
  docker(args: string[], timeoutMs?: number): DockerRun;
  /** `docker import` of a busybox-static rootfs (sh, wget, nc, sleep...), as image `tag`. */
  importBusybox(tag: string): void;
  /** `docker run -d --network host --name NAME IMAGE ...cmd`; resolves once it runs. */
  run(name: string, image: string, cmd: string[]): RealContainer;
  /** `docker exec NAME ...cmd`. */
  exec(name: string, cmd: string[], timeoutMs?: number): DockerRun;
  /** Stops everything; returns what is left behind (empty when all went). */
  close(): Promise<string[]>;
}

/** Why dockerd cannot be started here (with what to install), or null. */
export function dockerMissing(): string | null {
  const missing = [DOCKERD, DOCKER, BUSYBOX].filter((p) => !existsSync(p));
  return missing.length ? `${missing.join(", ")} not found: ${INSTALL}` : null;
}

interface Mount {
  mountPoint: string;
  fstype: string;
}

function mounts(): Mount[] {
  const out: Mount[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    const mountPoint = left?.split(" ")[4];
    if (!mountPoint || !right) continue;
    const unescaped = mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    out.push({ mountPoint: unescaped, fstype: right.split(" ")[0] ?? "" });
  }
  return out;
}

/** Every cgroup hierarchy (v1 controllers and v2): Docker makes /docker/<id> in each. */
const cgroupRoots = (): string[] =>
  mounts()
    .filter((m) => m.fstype === "cgroup" || m.fstype === "cgroup2")
    .map((m) => m.mountPoint);

const mountsUnder = (dir: string): string[] =>
  mounts()
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);

/** Pids whose command line names `dir` (dockerd, containerd, shims of this lab only). */
function pidsNaming(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(dir)) pids.push(Number(entry));
    } catch {
      // exited
    }
  }
  return pids;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
  } catch {
    return false;
  }
};

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const quiet = (f: () => void): void => {
  try {
    f();
  } catch {
    // cleanup goes on
  }
};

/**
 * Starts dockerd (in network namespace `netns`, if given) and waits until its API answers.
 * Throws, after cleaning up, with dockerd's log and what to install when it cannot start.
 */
export async function startDockerLab(tag: string, netns?: string): Promise<DockerLab> {
  const why = dockerMissing();
  if (why) throw new Error(`no real Docker for this test: ${why}`);
  const dir = mkdtempSync(join(tmpdir(), `moat-docker-${tag}-`));
  const dataRoot = join(dir, "data");
  const execRoot = join(dir, "exec");
  const socket = join(dir, "docker.sock");
  const logFile = join(dir, "dockerd.log");
  // the client's own config (not ~/.docker); the daemon's (not /etc/docker/daemon.json), which
  // also moves its identity key out of /etc/docker
  const clientConfig = join(dir, "client");
  mkdirSync(clientConfig);
  const daemonConfig = join(dir, "daemon.json");
  writeFileSync(daemonConfig, JSON.stringify({ "deprecated-key-path": join(dir, "key.json") }));

  const hostDirsBefore = new Set(HOST_DIRS.filter((d) => existsSync(d)));
  const cgroupParentsBefore = new Set(
    cgroupRoots()
      .map((r) => join(r, "docker"))
      .filter((d) => existsSync(d)),
  );
  const containerIds: string[] = [];

  const dockerd = [
    DOCKERD,
    "--config-file",
    daemonConfig,
    "--data-root",
    dataRoot,
    "--exec-root",
    execRoot,
    "--pidfile",
    join(dir, "dockerd.pid"),
    "-H",
    `unix://${socket}`,
    "--iptables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--bridge=none",
    "--userland-proxy=false",
  ];
  const log = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    // nsenter execs dockerd: the child's pid is dockerd's
    child = netns
      ? spawn("nsenter", [`--net=/run/netns/${netns}`, ...dockerd], {
          stdio: ["ignore", log, log],
        })
      : spawn(dockerd[0] ?? DOCKERD, dockerd.slice(1), { stdio: ["ignore", log, log] });
  } finally {
    closeSync(log);
  }
  const pid = child.pid ?? -1;
  let exited = false;
  child.on("exit", () => (exited = true));
  child.on("error", () => (exited = true));

  const docker = (args: string[], timeoutMs = 30_000): DockerRun => {
    const t = performance.now();
    const r = spawnSync(DOCKER, ["-H", `unix://${socket}`, ...args], {
      encoding: "utf8",
      timeout: timeoutMs,
      env: { ...process.env, DOCKER_CONFIG: clientConfig },
    });
    return {
      status: r.status ?? -1,
      stdout: r.stdout,
      stderr: r.stderr,
      ms: performance.now() - t,
    };
  };

  const leftovers = (): string[] => {
    const left: string[] = [];
    if (alive(pid)) left.push(`dockerd pid ${pid}`);
    for (const p of pidsNaming(dir)) if (alive(p)) left.push(`pid ${p} of this lab`);
    for (const m of mountsUnder(dir)) left.push(`mount ${m}`);
    for (const root of cgroupRoots()) {
      for (const id of containerIds)
        if (existsSync(join(root, "docker", id))) left.push(`cgroup ${root}/docker/${id}`);
      const parent = join(root, "docker");
      if (!cgroupParentsBefore.has(parent) && existsSync(parent)) left.push(`cgroup ${parent}`);
    }
    for (const d of HOST_DIRS) if (!hostDirsBefore.has(d) && existsSync(d)) left.push(d);
    if (existsSync(dir)) left.push(dir);
    return left;
  };

  let closing: Promise<string[]> | undefined;
  const close = (): Promise<string[]> =>
    (closing ??= (async () => {
      if (alive(pid)) {
        // containers first: the shims (and so the containers) outlive a dockerd that is killed
        const ids = docker(["ps", "-aq", "--no-trunc"], 10_000).stdout.split(/\s+/).filter(Boolean);
        if (ids.length) docker(["rm", "-f", ...ids], 20_000);
        quiet(() => process.kill(pid, "SIGTERM"));
        for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
      }
      // what a killed or stuck dockerd left: its containers' processes, containerd, the shims
      for (const root of cgroupRoots())
        for (const id of containerIds) {
          const kill = join(root, "docker", id, "cgroup.kill"); // cgroup v2 only
          if (existsSync(kill)) quiet(() => writeFileSync(kill, "1"));
        }
      for (const p of [pid, ...pidsNaming(dir)]) quiet(() => process.kill(p, "SIGKILL"));
      for (let i = 0; i < 50 && [pid, ...pidsNaming(dir)].some(alive); i++) await sleep(100);
      for (const m of mountsUnder(dir)) {
        if (spawnSync("umount", [m]).status !== 0) spawnSync("umount", ["-l", m]);
      }
      for (const root of cgroupRoots()) {
        for (const id of containerIds) quiet(() => rmdirSync(join(root, "docker", id)));
        const parent = join(root, "docker");
        if (!cgroupParentsBefore.has(parent)) quiet(() => rmdirSync(parent));
      }
      // a killed shim leaves its socket, named by containerd 1.6 after its address, namespace, id
      for (const id of containerIds) {
        const key = join(execRoot, "containerd", "containerd.sock", "moby", id);
        quiet(() => rmSync(join("/run/containerd/s", sha256(key)), { force: true }));
      }
      // only the ones this lab made, and only when empty (another dockerd may use them)
      for (const d of HOST_DIRS) if (!hostDirsBefore.has(d)) quiet(() => rmdirSync(d));
      if (mountsUnder(dir).length === 0) quiet(() => rmSync(dir, { recursive: true, force: true }));
      process.off("exit", onExit);
      return leftovers();
    })());
  // a test process that exits without close() (a crash, Ctrl-C) still stops dockerd
  const onExit = (): void => {
    if (alive(pid)) quiet(() => process.kill(pid, "SIGKILL"));
    for (const p of pidsNaming(dir)) quiet(() => process.kill(p, "SIGKILL"));
  };
  process.on("exit", onExit);

  const logTail = (): string => {
    try {
      return readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n");
    } catch {
      return "(no log)";
    }
  };

  // ready when the API answers; a dockerd that exits or hangs is a failure with its log
  const started = performance.now();
  for (;;) {
    if (exited || !alive(pid)) {
      const tail = logTail();
      await close();
      throw new Error(
        `dockerd exited at start; its log:\n${tail}\n(if it is not set up: ${INSTALL})`,
      );
    }
    if (docker(["version", "--format", "{{.Server.Version}}"], 5000).status === 0) break;
    if (performance.now() - started > 20_000) {
      const tail = logTail();
      await close();
      throw new Error(
        `dockerd did not answer within 20 s; its log:\n${tail}\n(if it is not set up: ${INSTALL})`,
      );
    }
    await sleep(100);
  }

  const must = (args: string[], timeoutMs?: number): string => {
    const r = docker(args, timeoutMs);
    if (r.status !== 0)
      throw new Error(`docker ${args.join(" ")}: exit ${r.status}\n${r.stderr}\n${logTail()}`);
    return r.stdout.trim();
  };

  return {
    dir,
    dataRoot,
    socket,
    pid,
    docker,
    importBusybox(imageTag) {
      const rootfs = join(dir, "rootfs");
      mkdirSync(join(rootfs, "bin"), { recursive: true });
      mkdirSync(join(rootfs, "tmp"));
      copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
      for (const applet of ["sh", "wget", "nc", "sleep", "cat", "ls", "id"])
        symlinkSync("busybox", join(rootfs, "bin", applet));
      const tar = join(dir, "rootfs.tar");
      const r = spawnSync("tar", ["-C", rootfs, "-cf", tar, "."], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
      must(["import", "--change", "ENV PATH=/bin", tar, imageTag]);
    },
    run(name, image, cmd) {
      const id = must(["run", "-d", "--network", "host", "--name", name, image, ...cmd]);
      if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`docker run printed ${JSON.stringify(id)}`);
      containerIds.push(id);
      const pidOf = Number(must(["inspect", "--format", "{{.State.Pid}}", id]));
      const line = readFileSync(`/proc/${pidOf}/cgroup`, "utf8")
        .split("\n")
        .find((l) => l.startsWith("0::"));
      return { id, name, image, pid: pidOf, cgroup: line?.slice(3) ?? "" };
    },
    exec: (name, cmd, timeoutMs) => docker(["exec", name, ...cmd], timeoutMs),
    close,
  };
}
