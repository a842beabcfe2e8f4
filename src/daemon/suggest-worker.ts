// One suggestion on its own thread: the policy text (the running one, or one the API was given)
// accepted as `moat check` accepts it, the flow roll-ups read on a read-only connection of their
// own, the rules proposed (or promoted) by src/observe/learn, and the suggested text checked
// again. The daemon's event loop and the history store's thread never wait for it.
import { basename } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { nodeHost } from "../host/index.ts";
import {
  HistoryReader,
  promotePolicy,
  promoteSince,
  suggestPolicy,
  type SuggestRequest,
} from "../observe/index.ts";
import type { SuggestApiRequest, SuggestOutcome } from "../api/index.ts";
import { accepted, withoutSetFiles } from "./worker-policy.ts";

export interface SuggestJob extends SuggestApiRequest {
  historyPath: string;
  /** The policy file's path: names the text in diagnostics, anchors its relative set files. */
  policyPath: string;
  /** The running policy's text (used when the request brings none). */
  running: string;
}

function run(job: SuggestJob): SuggestOutcome {
  const host =
    job.text === undefined || job.setFiles ? nodeHost : withoutSetFiles(nodeHost, "a suggestion");
  const text = job.text ?? job.running;
  const policy = accepted(text, job.policyPath, host);
  if (!policy.model) return { ok: false, errors: policy.errors, warnings: policy.warnings };
  const request: SuggestRequest = {
    text,
    model: policy.model,
    fileName: job.fileName ?? basename(job.policyPath),
    now: job.now,
    since: job.since,
  };
  for (const key of ["stableSeconds", "siblings", "addresses", "cleanDays"] as const)
    if (job[key] !== undefined) request[key] = job[key];
  const reader = new HistoryReader(job.historyPath);
  try {
    let suggestion;
    if (job.promote) {
      const since = promoteSince(job.now, request.cleanDays ?? 7, job.since);
      const { days, overflow } = reader.identityDays(since, job.now);
      suggestion = promotePolicy(request, days, "day", overflow);
    } else suggestion = suggestPolicy(request, reader.learnRows(job.since, job.now));
    const check =
      suggestion.text === text ? { errors: [] } : accepted(suggestion.text, job.policyPath, host);
    return { ok: true, suggestion, warnings: policy.warnings, problems: check.errors };
  } finally {
    reader.close();
  }
}

const port = parentPort;
if (!port) throw new Error("suggest worker: not started as a worker");
try {
  port.postMessage({ outcome: run(workerData as SuggestJob) });
} catch (err) {
  port.postMessage({ error: (err as Error).message });
}
