// What-if replays for the API: each on a worker thread of its own (replay-worker.ts), one at a
// time (a replay reads up to its limit of events; two at once would only share the cores).
import { Worker } from "node:worker_threads";
import type { ReplayOutcome, ReplayRequest } from "../api/index.ts";
import type { ReplayJob } from "./replay-worker.ts";

export interface ReplaySource {
  /** The history database; null when the history is off or kept in memory. */
  historyPath: string | null;
  /** Resolves once the history store is open; rejects when it could not be (no history). */
  ready?: Promise<void>;
  policyPath: string;
  /** The running policy's text. */
  runningText: () => string;
}

/**
 * One job on the worker thread `start` starts (written out as `new Worker(new URL(...))` at each
 * caller: the bundle finds its workers by that): the worker's `outcome`, or a rejection.
 */
export function runOnWorker<T>(start: () => Worker, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = start();
    worker.once("message", (m: { outcome?: T; error?: string }) => {
      if (m.outcome) resolve(m.outcome);
      else reject(new Error(`${what}: ${m.error ?? "failed"}`));
      void worker.terminate();
    });
    worker.once("error", reject);
    worker.once("exit", () => reject(new Error(`${what}: the worker exited`)));
  });
}

const runJob = (job: ReplayJob) =>
  runOnWorker<ReplayOutcome>(
    () =>
      new Worker(new URL("./replay-worker.ts", import.meta.url), {
        workerData: job,
        name: "moat-replay",
      }),
    "replay",
  );

/** What every history job carries besides its request. */
export interface HistoryJobBase {
  historyPath: string;
  /** The policy file's path: names texts in diagnostics, anchors their relative set files. */
  policyPath: string;
  /** The running policy's text. */
  running: string;
}

/**
 * The API's runner of one kind of history job: one at a time (each reads the history on a
 * worker thread of its own; two at once would only share the cores), null when the daemon keeps
 * no history on disk.
 */
export function historyJobs<R extends object, O>(
  source: ReplaySource,
  run: (job: R & HistoryJobBase) => Promise<O>,
): (request: R) => Promise<O | null> {
  let queue: Promise<unknown> = Promise.resolve();
  return async (request) => {
    const { historyPath } = source;
    if (historyPath === null) return null;
    try {
      await source.ready;
    } catch {
      return null; // the daemon said why at start
    }
    const job = {
      ...request,
      historyPath,
      policyPath: source.policyPath,
      running: source.runningText(),
    };
    const go = () => run(job);
    const next = queue.then(go, go);
    queue = next.catch(() => {});
    return next;
  };
}

export function historyReplayer(
  source: ReplaySource,
): (request: ReplayRequest) => Promise<ReplayOutcome | null> {
  return historyJobs<ReplayRequest, ReplayOutcome>(source, runJob);
}
