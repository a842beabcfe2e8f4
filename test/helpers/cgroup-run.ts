// Runs a real client as a process of a given cgroup (and network namespace), the way the socket
// hooks see it: the shell moves itself into the cgroup, then execs the client.
import { spawnSync } from "node:child_process";

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `cmd` in namespace `ns`, inside cgroup directory `cgroupDir` when given. */
export function runIn(ns: string, cgroupDir: string | null, cmd: string[]): Run {
  const enter = cgroupDir ? `echo $$ > ${cgroupDir}/cgroup.procs && ` : "";
  const t = performance.now();
  const r = spawnSync(
    "nsenter",
    [`--net=/run/netns/${ns}`, "sh", "-c", `${enter}exec "$@"`, "sh", ...cmd],
    { encoding: "utf8", timeout: 20_000 },
  );
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t };
}

/** Python that sends one UDP datagram and prints "sent" or "EPERM". */
export const udpSend = (host: string, port: number): string[] => [
  "python3",
  "-c",
  `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.sendto(b"q", ("${host}", ${port}))\n    print("sent")\nexcept PermissionError:\n    print("EPERM")`,
];
