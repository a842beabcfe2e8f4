// One replay on its own thread: the draft accepted as `moat check` accepts it (acceptPolicy), the
// history read on a read-only connection of its own, each event judged by the reference evaluator
// as it is read. The daemon's event loop and the history store's thread never wait for it.
import { parentPort, workerData } from "node:worker_threads";
import { nodeHost } from "../host/index.ts";
import { HistoryReader } from "../observe/index.ts";
import { policyChanges, Replay } from "../policy/index.ts";
import type { ReplayOutcome, ReplayRequest } from "../api/index.ts";
import { accepted, withoutSetFiles } from "./worker-policy.ts";

export interface ReplayJob extends ReplayRequest {
  historyPath: string;
  /** The policy file's path: names the draft in diagnostics, anchors its relative set files. */
  policyPath: string;
  /** The running policy's text. */
  running: string;
  baseline: ReplayRequest["baseline"];
}

function run(job: ReplayJob): ReplayOutcome {
  const draft = accepted(
    job.text,
    job.policyPath,
    job.setFiles ? nodeHost : withoutSetFiles(nodeHost),
  );
  if (!draft.model) return { ok: false, errors: draft.errors, warnings: draft.warnings };
  const running = accepted(job.running, job.policyPath, nodeHost).model;
  if (!running) throw new Error("the running policy could not be accepted again");
  const replay = new Replay({
    draft: draft.model,
    ...(job.baseline === "running" ? { running } : {}),
  });
  const reader = new HistoryReader(job.historyPath);
  try {
    const window = reader.window(job.since, job.until, job.limit);
    for (const event of window.events) replay.add(event);
    const report = replay.report({
      since: new Date(job.since).toISOString(),
      until: new Date(job.until).toISOString(),
      limit: job.limit,
      notScanned: Math.max(0, window.total - job.limit),
    });
    return {
      ok: true,
      report,
      warnings: draft.warnings,
      policyChanges: policyChanges(running, draft.model),
    };
  } finally {
    reader.close();
  }
}

const port = parentPort;
if (!port) throw new Error("replay worker: not started as a worker");
try {
  port.postMessage({ outcome: run(workerData as ReplayJob) });
} catch (err) {
  port.postMessage({ error: (err as Error).message });
}
