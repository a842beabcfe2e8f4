// Loaded into the daemon by B7's benches (NODE_OPTIONS=--import=bench/loop-probe.ts with
// MOAT_LOOP_PROBE=FILE): the event loop's delay as the daemon's own timers see it, and each stall
// of the loop over 2 ms with its wall-clock time and the GC pauses near it, for correlating the
// relay's slow requests with what ran then. Writes FILE (JSON) every 500 ms; FILE.reset (made by
// the bench) starts the delay histogram and the lists again. Bench-only.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { isMainThread } from "node:worker_threads";

const out = process.env.MOAT_LOOP_PROBE;
// NODE_OPTIONS reaches the daemon's worker threads too: the main thread's loop is the relay's
if (out && isMainThread) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  // cpu: the main thread's CPU time (ms) during the stall: near ms when the daemon itself ran
  // (JavaScript, GC, system calls), near 0 when the machine ran something else
  // wait: its time runnable but not running (the run queue, /proc/thread-self/schedstat): the rest
  // of a stall that is neither cpu nor wait is the thread asleep (a blocking call, a lock)
  const stalls: { at: number; ms: number; cpu: number; wait: number }[] = [];
  const runWaitMs = () =>
    Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[1]) / 1e6;
  const gcs: { at: number; ms: number; kind: number }[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < 1) continue;
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
      gcs.push({ at: performance.timeOrigin + e.startTime, ms: e.duration, kind });
    }
  }).observe({ entryTypes: ["gc"] });
  let last = performance.now();
  let lastCpu = process.threadCpuUsage();
  let lastWait = runWaitMs();
  setInterval(() => {
    const now = performance.now();
    const cpuNow = process.threadCpuUsage();
    const waitNow = runWaitMs();
    const lag = now - last - 1;
    if (lag > 2) {
      const cpu = (cpuNow.user - lastCpu.user + cpuNow.system - lastCpu.system) / 1000;
      stalls.push({ at: performance.timeOrigin + now, ms: lag, cpu, wait: waitNow - lastWait });
    }
    last = now;
    lastCpu = cpuNow;
    lastWait = waitNow;
  }, 1).unref();
  setInterval(() => {
    if (existsSync(`${out}.reset`)) {
      rmSync(`${out}.reset`);
      h.reset();
      stalls.length = 0;
      gcs.length = 0;
    }
    const ms = (q: number) => h.percentile(q) / 1e6;
    writeFileSync(
      out,
      JSON.stringify({
        delayMs: { p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9), max: h.max / 1e6 },
        count: h.count,
        stalls,
        gcs,
      }),
    );
  }, 500).unref();
}
