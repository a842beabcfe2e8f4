// CPU time a process has used, read from /proc: what the benchmarks charge to moat's daemon.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** CPU time (user + system, all threads) a process has used, in microseconds. */
export function cpuUs(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields 14 and 15 of stat (utime, stime), counted from after the command name
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS;
}

/** CPU per thread name of a process, in microseconds (threads of one name summed). */
export function threadCpuUs(pid: number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[name] = (out[name] ?? 0) + ((Number(f[11]) + Number(f[12])) * 1e6) / TICKS;
    } catch {
      // the thread ended
    }
  }
  return out;
}
