// The bench's side of bench/loop-probe.ts: start the daemon with the probe, reset its window, and
// read what it saw during a client's run (B7: bench/l7.ts, bench/l7-cpu.ts).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { ROOT } from "../test/helpers/paths.ts";

interface Probe {
  delayMs: Record<string, number>;
  count: number;
  stalls: { at: number; ms: number; cpu: number; wait: number }[];
  gcs: { at: number; ms: number; kind: number }[];
}
/** A client's samples (bench/l7-client.ts): µs each, and the slow ones' [start ms, µs]. */
export interface Samples {
  us: number[];
  slow: [number, number][];
}

/** The loop's figures during one client run. */
export interface LoopWindow {
  /** The event loop's delay percentiles (ms). */
  delayMs: Record<string, number>;
  /** Of the stalls over 2 ms: ms the main thread ran, waited for a CPU, slept (blocked). */
  stallMs: { onCpu: number; runQueue: number; asleep: number };
  stalls: number;
  largestStallsMs: number[];
  /** Stalls over 2 ms in which the main thread ran most of the time: [end (ms of the minute), ms]. */
  onCpu: [number, number][];
  /** GC pauses over 1 ms by V8's kind (1 scavenge, 4 mark-compact, 8 incremental): count, ms. */
  gc: Record<string, { n: number; ms: number }>;
  /** Slow connections (over 4 ms), and of them those that overlapped a stall or a GC pause. */
  slow: { n: number; duringStall: number; duringGc: number };
}

/** NODE_OPTIONS and the variable that load the probe into the daemon writing `file`. */
export function probeEnv(file: string): void {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import=${ROOT}bench/loop-probe.ts`;
  process.env.MOAT_LOOP_PROBE = file;
}

/** Starts the probe's window again (it resets within 500 ms). */
export async function probeReset(file: string): Promise<void> {
  writeFileSync(`${file}.reset`, "");
  while (existsSync(`${file}.reset`)) await new Promise((res) => setTimeout(res, 50));
}

/** What the probe saw since its reset, against a client's samples. */
export async function probeRead(file: string, s: Samples): Promise<LoopWindow> {
  await new Promise((res) => setTimeout(res, 700));
  const pr = JSON.parse(readFileSync(file, "utf8")) as Probe;
  const overlaps = (at: number, us: number, t: { at: number; ms: number }) =>
    t.at >= at && t.at - t.ms <= at + us / 1000;
  const sum = <T>(xs: T[], g: (x: T) => number) => xs.reduce((a, x) => a + g(x), 0);
  const gc: LoopWindow["gc"] = {};
  for (const g of pr.gcs) {
    const k = (gc[String(g.kind)] ??= { n: 0, ms: 0 });
    k.n++;
    k.ms += g.ms;
  }
  return {
    delayMs: pr.delayMs,
    stallMs: {
      onCpu: sum(pr.stalls, (t) => t.cpu),
      runQueue: sum(pr.stalls, (t) => t.wait),
      asleep: sum(pr.stalls, (t) => Math.max(0, t.ms - t.cpu - t.wait)),
    },
    stalls: pr.stalls.length,
    largestStallsMs: pr.stalls
      .map((t) => t.ms)
      .sort((a, b) => b - a)
      .slice(0, 5),
    onCpu: pr.stalls
      .filter((t) => t.cpu > 0.7 * t.ms)
      .map((t): [number, number] => [Math.round(t.at % 60000), Math.round(t.ms * 10) / 10]),
    gc,
    slow: {
      n: s.slow.length,
      duringStall: s.slow.filter(([at, us]) => pr.stalls.some((t) => overlaps(at, us, t))).length,
      duringGc: s.slow.filter(([at, us]) =>
        pr.gcs.some((g) => overlaps(at, us, { at: g.at + g.ms, ms: g.ms })),
      ).length,
    },
  };
}

/** One line of a window. */
export function formatWindow(w: LoopWindow): string {
  const f = (x: number) => x.toFixed(1);
  const d = w.delayMs;
  const gc = Object.entries(w.gc)
    .map(([k, v]) => `kind ${k}: ${v.n}, ${f(v.ms)} ms`)
    .join("; ");
  return (
    `loop delay ms p50/p90/p99/p99.9/max ${[d.p50, d.p90, d.p99, d.p999, d.max].map((x) => f(x ?? 0)).join("/")}; ` +
    `${w.stalls} stalls > 2 ms: on CPU ${f(w.stallMs.onCpu)} ms, waiting for a CPU ${f(w.stallMs.runQueue)}, asleep ${f(w.stallMs.asleep)} (largest ${w.largestStallsMs.map(f).join(",")}); ` +
    `on CPU most of the stall: ${w.onCpu.length} (${w.onCpu
      .slice(0, 10)
      .map(([at, ms]) => `${ms}@${at}`)
      .join(
        ",",
      )}); GC pauses > 1 ms ${gc || "none"}; slow connections ${w.slow.n}, during a stall ${w.slow.duringStall}, during a GC ${w.slow.duringGc}`
  );
}
