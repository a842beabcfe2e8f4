// Runs a real client as a process of a given cgroup (and network namespace), the way the socket
// hooks see it: the shell moves itself into the cgroup, then execs the client.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Mount } from "../../src/datapath/prerequisites.ts";

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `cmd` in namespace `ns`, inside cgroup directory `cgroupDir` when given. */
export function runIn(
  ns: string,
  cgroupDir: string | null,
  cmd: string[],
  timeoutMs = 20_000,
): Run {
  const t = performance.now();
  const r = spawnSync("nsenter", nsenterArgs(ns, cgroupDir, cmd), {
    encoding: "utf8",
    timeout: timeoutMs,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t };
}

/** nsenter's arguments: the shell moves itself into the cgroup, then execs `cmd`. */
function nsenterArgs(ns: string, cgroupDir: string | null, cmd: readonly string[]): string[] {
  const enter = cgroupDir ? `echo $$ > ${cgroupDir}/cgroup.procs && ` : "";
  return [`--net=/run/netns/${ns}`, "sh", "-c", `${enter}exec "$@"`, "sh", ...cmd];
}

export interface Job {
  cgroupDir: string | null;
  cmd: string[];
}

/**
 * Each job as runIn runs it, `width` at a time; the runs in the jobs' order. The clients of a
 * property's case are independent processes, so they need not wait for each other.
 */
export async function runAllIn(
  ns: string,
  jobs: readonly Job[],
  width = 3,
  timeoutMs = 20_000,
): Promise<Run[]> {
  const runs: Run[] = new Array<Run>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < jobs.length; i = next++)
      runs[i] = await runOneIn(ns, jobs[i]!, timeoutMs);
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  return runs;
}

function runOneIn(ns: string, job: Job, timeoutMs: number): Promise<Run> {
  const t = performance.now();
  return new Promise((resolve) => {
    execFile(
      "nsenter",
      nsenterArgs(ns, job.cgroupDir, job.cmd),
      { encoding: "utf8", timeout: timeoutMs },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ status, stdout, stderr, ms: performance.now() - t });
      },
    );
  });
}

/** `cmd` run as nobody (uid and gid 65534, no supplementary groups). */
export const asNobody = (cmd: string[]): string[] => [
  "setpriv",
  "--reuid=65534",
  "--regid=65534",
  "--clear-groups",
  ...cmd,
];

/** Python that sends one UDP datagram and prints "sent" or "EPERM". */
export const udpSend = (host: string, port: number): string[] => [
  "python3",
  "-c",
  `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.sendto(b"q", ("${host}", ${port}))\n    print("sent")\nexcept PermissionError:\n    print("EPERM")`,
];

export interface TestCgroup {
  /** The path inside the cgroup v2 hierarchy, as attach.cgroup names it. */
  cgroup: string;
  /** Its directory. */
  dir: string;
  /** Removes it and any child cgroups the test made (their processes must have exited). */
  remove(): void;
}

/** Blocks this thread for `ms` (a test's clean-up, which may not be asynchronous). */
const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Removes a cgroup directory and its children. Their processes must have been ended: one killed
 * a moment ago may still be exiting (rmdir: EBUSY), so a busy directory is tried again for
 * `patienceMs`.
 */
function removeCgroup(path: string, patienceMs = 5000): void {
  if (!existsSync(path)) return;
  for (const e of readdirSync(path, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroup(join(path, e.name), patienceMs);
  for (let waited = 0; ; waited += 50) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EBUSY" || waited >= patienceMs) throw err;
      pause(50);
    }
  }
}

/** Test cgroups and namespaces are named after the test process's pid. */
const PER_PID = /^moat-(?:sockprop|test-[a-z0-9-]+?)-(\d+)(?:\.slice)?$/;

/**
 * Removes what killed test runs left behind (a run killed by SIGKILL runs no clean-up): cgroups
 * and namespaces named after a process that is gone.
 */
export function sweepStale(): void {
  const gone = (name: string) => {
    const pid = PER_PID.exec(name)?.[1];
    return pid !== undefined && !existsSync(`/proc/${pid}`);
  };
  const mount = cgroup2Mount();
  for (const name of mount ? readdirSync(mount) : []) {
    try {
      if (gone(name)) removeCgroup(join(mount ?? "", name), 0);
    } catch {
      // still busy: the next sweep
    }
  }
  const namespaces = existsSync("/run/netns") ? readdirSync("/run/netns") : [];
  for (const name of namespaces.filter(gone)) spawnSync("ip", ["netns", "del", name]);
  // bpffs pin directories (labPinDir): a run killed before its cleanup leaves its pins there
  const pins = existsSync("/sys/fs/bpf") ? readdirSync("/sys/fs/bpf") : [];
  for (const name of pins.filter(gone)) spawnSync("rm", ["-rf", join("/sys/fs/bpf", name)]);
}

/** A cgroup of this test process, made now, named `/moat-test-KIND-PID`. */
export function testCgroup(kind: string): TestCgroup {
  const mount = cgroup2Mount();
  if (!mount) throw new Error("the cgroup v2 hierarchy is not mounted");
  sweepStale();
  const cgroup = `/moat-test-${kind}-${process.pid}`;
  const dir = join(mount, cgroup);
  mkdirSync(dir, { recursive: true });
  return { cgroup, dir, remove: () => removeCgroup(dir) };
}
