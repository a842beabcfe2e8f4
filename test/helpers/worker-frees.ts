// A process (run by test/unit/malloc-thresholds.test.ts) whose worker thread takes 30 MiB and
// stops; prints how much more anonymous memory the process keeps once its free pages are given
// back. `held` as the last argument: glibc's thresholds as the daemon holds them. Needs --expose-gc.
import { Worker } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { holdMallocThresholds, trimMemory } from "../../src/datapath/trim-memory.ts";

const anonMiB = () =>
  Number(/^Anonymous:\s+(\d+)/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"))?.[1]) / 1024;
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

if (process.argv.at(-1) === "held") holdMallocThresholds();
// a big block, unmapped when it is freed: left to glibc, its thresholds rise with it (31, 62 MiB)
Buffer.alloc(31 * 2 ** 20, 1);
gc();
await settle();
trimMemory();
const before = anonMiB();
// the block is freed when the worker's isolate is torn down, after its last use
const worker = new Worker("Buffer.alloc(30 * 2 ** 20, 1);", { eval: true });
await new Promise((resolve) => worker.once("exit", resolve));
await settle();
trimMemory();
console.log(JSON.stringify({ keptMiB: anonMiB() - before }));
