// Running a client in a lab namespace, inside a cgroup when given, without blocking the event
// loop (the benchmarks measure while their daemon and servers run).
import { spawn } from "node:child_process";

export interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

/** `cmd` in namespace `ns`, inside `cgroupDir` when given; never blocks the event loop. */
export function runIn(ns: string, cgroupDir: string | null, cmd: string[]): Promise<Ran> {
  const enter = cgroupDir ? `echo $$ > ${cgroupDir}/cgroup.procs && ` : "";
  return new Promise((resolve) => {
    const child = spawn("nsenter", [
      `--net=/run/netns/${ns}`,
      "sh",
      "-c",
      `${enter}exec "$@"`,
      "sh",
      ...cmd,
    ]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}
