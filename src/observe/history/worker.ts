// The history store's own thread: SQLite inserts take 14-35 µs an event, which on the daemon's
// event loop would hold up the ring-buffer drain and every other sink (docs/observability.md).
// Requests are handled in order, a prune or a query in steps with other requests between them;
// each is answered with its id.
import { parentPort, workerData } from "node:worker_threads";
import { HistoryStore, type HistoryOptions, type HistorySearch } from "./store.ts";
import type { HistoryRequest, HistoryResponse } from "./remote.ts";

const { path, options } = workerData as { path: string; options: HistoryOptions };
const port = parentPort;
if (!port) throw new Error("history worker: not started as a worker");

let store: HistoryStore | null = null;
let openError: string | null = null;
try {
  store = new HistoryStore(path, options);
} catch (err) {
  openError = (err as Error).message;
}

/** handle()'s answer to a prune request or a query: it is answered when its last step is done. */
const PRUNING = Symbol("pruning");
const STEPPING = Symbol("stepping");

/** Rows written since the last prune; past PRUNE_AFTER_ROWS the thread prunes on its own. */
let sincePrune = 0;
let pruning = false;
const PRUNE_AFTER_ROWS = 100_000;

function handle(req: HistoryRequest): unknown {
  if (!store) throw new Error(openError ?? "the history store is closed");
  switch (req.op) {
    case "insert": {
      store.insertBlocks(req.blocks);
      let rows = 0;
      for (const block of req.blocks) rows += block.rows;
      afterInsert(rows);
      return null;
    }
    case "flows":
      store.insertFlows(req.summaries);
      return null;
    case "flowStats":
      return store.flowStats(req.query);
    case "baselineRows":
      return store.baselineRows(req.until);
    case "notice":
      store.notice(req.notice);
      return null;
    case "query":
      return searchInSteps(req.id, store.search(req.query));
    case "prune":
      return PRUNING;
    case "close":
      store.close();
      store = null;
      return null;
  }
}

/**
 * Prunes a step per turn of the thread's loop, so the inserts that arrive meanwhile are written
 * between steps: a prune of a large store takes seconds, and a pipeline queue waiting that long
 * would overflow and drop events.
 */
function pruneInSteps(id: number | null, deleted = 0): void {
  pruning = true;
  let step: number;
  try {
    step = store ? store.pruneStep() : 0;
  } catch (err) {
    pruning = false;
    if (id !== null) port!.postMessage({ id, ok: false, error: (err as Error).message });
    return;
  }
  if (step > 0) return void setImmediate(() => pruneInSteps(id, deleted + step));
  pruning = false;
  if (id !== null) port!.postMessage({ id, ok: true, value: deleted } satisfies HistoryResponse);
}

/**
 * A query a step per turn of the thread's loop, for the same reason as the prune: one that no
 * index narrows reads a window of the store a step, and inserts are written between windows.
 */
function searchInSteps(id: number, search: HistorySearch): typeof STEPPING {
  const next = () => {
    let done: boolean;
    try {
      done = search.step();
      if (done) port!.postMessage({ id, ok: true, value: search.page() } satisfies HistoryResponse);
    } catch (err) {
      port!.postMessage({ id, ok: false, error: (err as Error).message });
      return;
    }
    if (!done) setImmediate(next);
  };
  next();
  return STEPPING;
}

/** At high rates the daemon's timed prune comes too seldom to hold the size limit. */
function afterInsert(rows: number): void {
  sincePrune += rows;
  if (sincePrune < PRUNE_AFTER_ROWS || pruning) return;
  sincePrune = 0;
  setImmediate(() => pruneInSteps(null));
}

port.on("message", (req: HistoryRequest) => {
  let res: HistoryResponse;
  try {
    const value = handle(req);
    if (value === PRUNING) return pruneInSteps(req.id);
    if (value === STEPPING) return;
    res = { id: req.id, ok: true, value };
  } catch (err) {
    res = { id: req.id, ok: false, error: (err as Error).message };
  }
  port.postMessage(res);
  if (req.op === "close") port.close();
});
port.postMessage({ id: 0, ok: openError === null, error: openError ?? undefined, value: null });
