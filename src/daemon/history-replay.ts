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

function runJob(job: ReplayJob): Promise<ReplayOutcome> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./replay-worker.ts", import.meta.url), {
      workerData: job,
      name: "moat-replay",
    });
    worker.once("message", (m: { outcome?: ReplayOutcome; error?: string }) => {
      if (m.outcome) resolve(m.outcome);
      else reject(new Error(`replay: ${m.error ?? "failed"}`));
      void worker.terminate();
    });
    worker.once("error", reject);
    worker.once("exit", () => reject(new Error("replay: the worker exited")));
  });
}

export function historyReplayer(
  source: ReplaySource,
): (request: ReplayRequest) => Promise<ReplayOutcome | null> {
  let queue: Promise<unknown> = Promise.resolve();
  return async (request) => {
    const { historyPath } = source;
    if (historyPath === null) return null;
    try {
      await source.ready;
    } catch {
      return null; // the daemon said why at start
    }
    const job: ReplayJob = {
      ...request,
      historyPath,
      policyPath: source.policyPath,
      running: source.runningText(),
    };
    const run = queue.then(
      () => runJob(job),
      () => runJob(job),
    );
    queue = run.catch(() => {});
    return run;
  };
}
