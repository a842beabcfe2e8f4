// Suggestions for the API: each on a worker thread of its own (suggest-worker.ts), one at a time.
import { Worker } from "node:worker_threads";
import type { SuggestApiRequest, SuggestOutcome } from "../api/index.ts";
import { runOnWorker, type ReplaySource } from "./history-replay.ts";
import type { SuggestJob } from "./suggest-worker.ts";

export function historySuggester(
  source: ReplaySource,
): (request: SuggestApiRequest) => Promise<SuggestOutcome | null> {
  let queue: Promise<unknown> = Promise.resolve();
  return async (request) => {
    const { historyPath } = source;
    if (historyPath === null) return null;
    try {
      await source.ready;
    } catch {
      return null; // the daemon said why at start
    }
    const job: SuggestJob = {
      ...request,
      historyPath,
      policyPath: source.policyPath,
      running: source.runningText(),
    };
    const go = () =>
      runOnWorker<SuggestOutcome>(
        () =>
          new Worker(new URL("./suggest-worker.ts", import.meta.url), {
            workerData: job,
            name: "moat-suggest",
          }),
        "suggest",
      );
    const run = queue.then(go, go);
    queue = run.catch(() => {});
    return run;
  };
}
