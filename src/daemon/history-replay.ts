// What-if replays for the API: each on a worker thread of its own (replay-worker.ts), one at a
// time (a replay reads up to its limit of events; two at once would only share the cores). The
// queue is bounded, overall and per caller; a queued job whose caller hung up is dropped; a job
// past its time limit, or whose caller hung up, has its worker ended.
import { Worker, type ResourceLimits } from "node:worker_threads";
import {
  HttpError,
  type JobContext,
  type ReplayOutcome,
  type ReplayRequest,
} from "../api/index.ts";
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

/** Bounds of each kind of history job (replay, suggest). */
export const HISTORY_JOB_LIMITS = {
  /** Jobs waiting or running at once; past that a new one is refused (429). */
  maxQueued: 8,
  /** Of those, one caller's (a token; root is one caller). */
  maxPerOwner: 2,
  /** A job running longer has its worker ended. */
  timeoutMs: 5 * 60_000,
};

/** A replay worker's heap: a draft and the events it reads, never the daemon's memory. */
export const WORKER_RESOURCE_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 1024 };

/**
 * The job historyJobs is starting: runOnWorker, called synchronously by the job's runner, ends
 * its worker on the job's time limit or when its caller hangs up.
 */
let starting: JobContext | null = null;

/**
 * One job on the worker thread `start` starts (written out as `new Worker(new URL(...))` at each
 * caller: the bundle finds its workers by that): the worker's `outcome`, or a rejection.
 */
export function runOnWorker<T>(start: () => Worker, what: string): Promise<T> {
  const context = starting;
  return new Promise((resolve, reject) => {
    const worker = start();
    const timer = setTimeout(
      () => stop(`${what}: over its time limit (${HISTORY_JOB_LIMITS.timeoutMs} ms)`),
      HISTORY_JOB_LIMITS.timeoutMs,
    );
    timer.unref();
    const abort = () => stop(`${what}: the caller hung up`);
    context?.signal.addEventListener("abort", abort, { once: true });
    const done = () => {
      clearTimeout(timer);
      context?.signal.removeEventListener("abort", abort);
    };
    const stop = (why: string) => {
      done();
      reject(new Error(why));
      void worker.terminate();
    };
    if (context?.signal.aborted) return abort();
    worker.once("message", (m: { outcome?: T; error?: string }) => {
      done();
      if (m.outcome) resolve(m.outcome);
      else reject(new Error(`${what}: ${m.error ?? "failed"}`));
      void worker.terminate();
    });
    worker.once("error", (err) => {
      done();
      reject(err);
    });
    worker.once("exit", () => {
      done();
      reject(new Error(`${what}: the worker exited`));
    });
  });
}

const runJob = (job: ReplayJob) =>
  runOnWorker<ReplayOutcome>(
    () =>
      new Worker(new URL("./replay-worker.ts", import.meta.url), {
        workerData: job,
        name: "moat-replay",
        resourceLimits: WORKER_RESOURCE_LIMITS,
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
): (request: R, context?: JobContext) => Promise<O | null> {
  let queue: Promise<unknown> = Promise.resolve();
  /** Jobs waiting or running, by owner. */
  const owners = new Map<string, number>();
  let total = 0;
  return async (request, context) => {
    const { historyPath } = source;
    if (historyPath === null) return null;
    try {
      await source.ready;
    } catch {
      return null; // the daemon said why at start
    }
    const owner = context?.owner ?? "";
    const mine = owners.get(owner) ?? 0;
    if (total >= HISTORY_JOB_LIMITS.maxQueued)
      throw new HttpError(429, "EBUSY", "too many history jobs are queued; try again later");
    if (mine >= HISTORY_JOB_LIMITS.maxPerOwner)
      throw new HttpError(
        429,
        "EBUSY",
        `${owner || "this caller"} already has ${mine} history jobs queued or running; wait for them`,
      );
    total++;
    owners.set(owner, mine + 1);
    const job = {
      ...request,
      historyPath,
      policyPath: source.policyPath,
      running: source.runningText(),
    };
    const signal = context?.signal;
    const hungUp = () => new Error("the caller hung up");
    try {
      return await new Promise<O>((resolve, reject) => {
        // a caller that hangs up while its job is queued: the job is dropped at once
        const drop = () => reject(hungUp());
        signal?.addEventListener("abort", drop, { once: true });
        const go = () => {
          signal?.removeEventListener("abort", drop);
          if (signal?.aborted) throw hungUp();
          starting = context ?? null;
          try {
            return run(job);
          } finally {
            starting = null;
          }
        };
        const next = queue.then(go, go);
        queue = next.catch(() => {});
        next.then(resolve, reject);
      });
    } finally {
      total--;
      const n = (owners.get(owner) ?? 1) - 1;
      if (n > 0) owners.set(owner, n);
      else owners.delete(owner);
    }
  };
}

export function historyReplayer(
  source: ReplaySource,
): (request: ReplayRequest, context?: JobContext) => Promise<ReplayOutcome | null> {
  return historyJobs<ReplayRequest, ReplayOutcome>(source, runJob);
}
