// The network namespaces of the processes in a cgroup tree (attach.cgroup) other than moat's
// own: a container in a namespace of its own cannot reach moat's loopback, so moat's DNS proxy
// opens sockets inside each of these.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** Every process id in cgroup directory `dir` and below. */
function pidsUnder(dir: string): number[] {
  const out: number[] = [];
  try {
    for (const line of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n"))
      if (line) out.push(Number(line));
    for (const e of readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) out.push(...pidsUnder(join(dir, e.name)));
  } catch {
    // removed meanwhile
  }
  return out;
}

/**
 * The network namespaces (as /proc/PID/ns/net names them, `net:[4026532...]`) of the processes
 * under `cgroupDir`, each with one process in it; moat's own namespace is left out.
 */
export function networkNamespacesUnder(cgroupDir: string, procRoot = "/proc"): Map<string, number> {
  const own = readlinkSync(`${procRoot}/self/ns/net`);
  const out = new Map<string, number>();
  for (const pid of pidsUnder(cgroupDir)) {
    try {
      const ns = readlinkSync(`${procRoot}/${pid}/ns/net`);
      if (ns !== own && !out.has(ns)) out.set(ns, pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
