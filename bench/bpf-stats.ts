// The kernel's own per-program run statistics (kernel.bpf_stats_enabled): how programs that
// cannot be test-run (cgroup sock_addr hooks) are timed. The sysctl is global, so the old value
// is restored by whoever turned it on.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

/** Turns the statistics on; returns the function that puts the old value back. */
export function enableBpfStats(): () => void {
  const old = readFileSync(SYSCTL, "utf8").trim();
  writeFileSync(SYSCTL, "1");
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    writeFileSync(SYSCTL, old);
  };
}

export interface RunStats {
  runTimeNs: number;
  runCnt: number;
}

/** run_time_ns and run_cnt of program `id`, from bpftool. */
export function programStats(id: number): RunStats {
  const out = execFileSync("bpftool", ["prog", "show", "id", String(id), "-j"], {
    encoding: "utf8",
  });
  const info = JSON.parse(out) as { run_time_ns?: number; run_cnt?: number };
  return { runTimeNs: info.run_time_ns ?? 0, runCnt: info.run_cnt ?? 0 };
}
