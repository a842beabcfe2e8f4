// Suggestions for the API: each on a worker thread of its own (suggest-worker.ts), one at a time.
import { Worker } from "node:worker_threads";
import type { SuggestApiRequest, SuggestOutcome } from "../api/index.ts";
import {
  historyJobs,
  runOnWorker,
  WORKER_RESOURCE_LIMITS,
  type ReplaySource,
} from "./history-replay.ts";
import type { SuggestJob } from "./suggest-worker.ts";

export function historySuggester(
  source: ReplaySource,
): (request: SuggestApiRequest) => Promise<SuggestOutcome | null> {
  return historyJobs<SuggestApiRequest, SuggestOutcome>(source, (job: SuggestJob) =>
    runOnWorker<SuggestOutcome>(
      () =>
        new Worker(new URL("./suggest-worker.ts", import.meta.url), {
          workerData: job,
          name: "moat-suggest",
          resourceLimits: WORKER_RESOURCE_LIMITS,
        }),
      "suggest",
    ),
  );
}
