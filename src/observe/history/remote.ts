// The history store in a worker thread (worker.ts), with the same operations as HistoryStore,
// answered asynchronously: the daemon's event loop only pays for turning a batch into rows
// (rows.ts, blocks of them) and handing them over.
import { Worker } from "node:worker_threads";
import type { MoatEvent } from "../../datapath/event.ts";
import type { Notice } from "../notice.ts";
import type { HistoryPage, HistoryQuery } from "./query.ts";
import type { HistoryOptions } from "./store.ts";
import { eventBlocks, type RowBlock } from "./rows.ts";
import type { StatsPage, StatsQuery } from "./rollup.ts";
import type { FlowSummary } from "../flows/record.ts";
import type { BaselineInput } from "../anomaly/from-rollups.ts";

export type HistoryRequest =
  | { id: number; op: "insert"; blocks: RowBlock[] }
  | { id: number; op: "notice"; notice: Notice }
  | { id: number; op: "flows"; summaries: readonly FlowSummary[] }
  | { id: number; op: "flowStats"; query: StatsQuery }
  | { id: number; op: "baselineRows"; until: number }
  | { id: number; op: "query"; query: HistoryQuery }
  | { id: number; op: "prune" }
  | { id: number; op: "close" };

export interface HistoryResponse {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
  /** The store is not open because it could not be opened (tried again later). */
  unavailable?: boolean;
}

/** A line for the daemon's log from the history's thread: it opened again, its file went. */
export interface HistoryStatus {
  status: string;
}

/** Asked of a store that is not open because it could not be (a full disk); it is tried again. */
export class HistoryUnavailableError extends Error {
  readonly code = "EHISTORYUNAVAILABLE";
  constructor(message: string) {
    super(message);
    this.name = "HistoryUnavailableError";
  }
}

export interface HistoryWorkerOptions extends HistoryOptions {
  /** How often a store that could not be opened is tried again (default 30 s). */
  reopenMs?: number;
  /** How often the database file is looked for at its path while open (default 2 s). */
  checkMs?: number;
}

export const HISTORY_REOPEN_MS = 30_000;
const CHECK_FILE_MS = 2000;

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void };
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

export class HistoryWorker {
  readonly path: string;
  /**
   * Resolves once the store is open; rejects with why it could not be at first (it is tried
   * again later: onStatus says when it opened).
   */
  readonly ready: Promise<void>;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #closed = false;
  readonly #said: ((line: string) => void)[] = [];

  constructor(path: string, options: HistoryWorkerOptions = {}) {
    this.path = path;
    const { reopenMs = HISTORY_REOPEN_MS, checkMs = CHECK_FILE_MS, ...storeOptions } = options;
    this.#worker = new Worker(new URL("./worker.ts", import.meta.url), {
      workerData: { path, options: storeOptions, reopenMs, checkMs },
      // the thread's name in `top -H` and /proc (bench/events.ts reads its CPU time by it)
      name: "moat-history",
    });
    this.ready = new Promise((resolve, reject) =>
      this.#pending.set(0, {
        resolve: () => resolve(),
        reject,
      }),
    );
    this.ready.catch(() => {}); // the daemon reports it; an unobserved rejection must not crash
    this.#worker.on("message", (msg: HistoryResponse | HistoryStatus) => {
      if ("status" in msg) {
        for (const listener of this.#said) listener(msg.status);
        return;
      }
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.ok) return p.resolve(msg.value);
      const message = `history ${this.path}: ${msg.error ?? "failed"}`;
      p.reject(msg.unavailable ? new HistoryUnavailableError(message) : new Error(message));
    });
    this.#worker.on("error", (err) => this.#failAll(err));
    this.#worker.on("exit", () => this.#failAll(new Error(`history ${this.path}: worker exited`)));
  }

  /**
   * Lines for the daemon's log: the store could not be opened (once per reason), opened again,
   * its file went away and a new one was opened.
   */
  onStatus(listener: (line: string) => void): void {
    this.#said.push(listener);
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #call(req: WithoutId<HistoryRequest>): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error(`history ${this.path}: closed`));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...req, id });
    });
  }

  insert(batch: readonly MoatEvent[]): Promise<void> {
    return batch.length
      ? (this.#call({ op: "insert", blocks: eventBlocks(batch) }) as Promise<void>)
      : Promise.resolve();
  }

  /** A window's flow summaries (HistoryStore.insertFlows). */
  flows(summaries: readonly FlowSummary[]): Promise<void> {
    return summaries.length
      ? (this.#call({ op: "flows", summaries }) as Promise<void>)
      : Promise.resolve();
  }

  flowStats(query: StatsQuery = {}): Promise<StatsPage> {
    return this.#call({ op: "flowStats", query }) as Promise<StatsPage>;
  }

  /** The roll-ups the anomaly baselines are rebuilt from, read on the history's thread. */
  baselineRows(until: number): Promise<BaselineInput> {
    return this.#call({ op: "baselineRows", until }) as Promise<BaselineInput>;
  }

  notice(notice: Notice): Promise<void> {
    return this.#call({ op: "notice", notice }) as Promise<void>;
  }

  query(query: HistoryQuery = {}): Promise<HistoryPage> {
    return this.#call({ op: "query", query }) as Promise<HistoryPage>;
  }

  prune(): Promise<number> {
    return this.#call({ op: "prune" }) as Promise<number>;
  }

  /** Checkpoints and closes the database, then ends the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const done = this.#call({ op: "close" }).catch(() => {});
    this.#closed = true;
    await done;
    await this.#worker.terminate();
  }
}
