// Where a benchmark's JSON goes, with what it was measured on: machine, kernel, commit, JIT.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, hostname, release, totalmem } from "node:os";

export function machine(): Record<string, string | number | undefined> {
  return {
    commit: execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim(),
    kernel: release(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memMiB: Math.round(totalmem() / 2 ** 20),
    host: hostname(),
    jit: readFileSync("/proc/sys/net/core/bpf_jit_enable", "utf8").trim(),
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** Writes bench/results/NAME.json: the machine, then `data`. */
export function writeResult(name: string, data: Record<string, unknown>): void {
  mkdirSync("bench/results", { recursive: true });
  writeFileSync(`bench/results/${name}.json`, JSON.stringify({ ...machine(), ...data }, null, 2));
}

export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** The q-quantile (0..1) of `sorted`, ascending. */
export const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
