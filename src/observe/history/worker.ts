// The history store's own thread: SQLite inserts take 14-35 µs an event, which on the daemon's
// event loop would hold up the ring-buffer drain and every other sink (docs/observability.md).
// Requests are handled in order, a prune or a query in steps with other requests between them;
// each is answered with its id. A store that cannot be opened (a full disk) is tried again after
// 5 s, then at waits doubling up to reopenMs, and a database file removed or replaced while open is given up for the one at its
// path (checked every checkMs); both are said to the daemon as status lines.
import { existsSync, rmSync, statSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { HistoryStore, type HistoryOptions, type HistorySearch } from "./store.ts";
import type { StatsSearch } from "./stats-search.ts";
import type { HistoryRequest, HistoryResponse, HistoryStatus } from "./remote.ts";

const { path, options, reopenMs, checkMs } = workerData as {
  path: string;
  options: HistoryOptions;
  reopenMs: number;
  checkMs: number;
};
const port = parentPort;
if (!port) throw new Error("history worker: not started as a worker");

/** Asked for while the store is not open because it could not be: answered as unavailable. */
class StoreUnavailable extends Error {}

let store: HistoryStore | null = null;
/** Why the store could not be opened, while it is not open; null when open or closed on request. */
let openError: string | null = null;
/** The file the store has open (device and inode), as seen at its path when it was opened. */
let opened: string | null = null;
let reopening: NodeJS.Timeout | null = null;
/** The wait before the next try to open: 5 s first, doubling up to reopenMs (a disk freed soon is
 * seen soon, one that stays full costs a try every reopenMs). */
const FIRST_REOPEN_MS = Math.min(5000, reopenMs);
let reopenWait = FIRST_REOPEN_MS;
let closed = false;

/** The daemon logs these lines (HistoryWorker.onStatus). */
const say = (line: string) => port.postMessage({ status: line } satisfies HistoryStatus);

/** The file at `path` (device and inode), or null when there is none. */
function fileAt(at: string): string | null {
  try {
    const st = statSync(at);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** Opens the store; when it cannot be, says why (once per reason) and tries again later. */
function open(): boolean {
  const failedBefore = openError;
  try {
    store = new HistoryStore(path, options);
  } catch (err) {
    const reason = (err as Error).message;
    if (reason !== failedBefore)
      say(
        `warning: no event history: history ${path}: ${reason}; tried again in ${reopenWait / 1000} s, then at most every ${reopenMs / 1000} s`,
      );
    openError = reason;
    reopening = setTimeout(() => {
      reopening = null;
      if (!closed && !store) open();
    }, reopenWait);
    reopenWait = Math.min(reopenWait * 2, reopenMs);
    reopening.unref();
    return false;
  }
  opened = path === ":memory:" ? null : fileAt(path);
  openError = null;
  reopenWait = FIRST_REOPEN_MS;
  if (failedBefore !== null) say(`history ${path}: open again, events are kept`);
  return true;
}

/**
 * The database file removed or replaced while open: rows would go on into a file nothing can
 * read again. The old store is closed (its log checkpointed into it) and one opened at the path.
 */
function checkFile(): void {
  if (!store || opened === null) return;
  const now = fileAt(path);
  if (now === opened) return;
  try {
    store.close();
  } catch {
    // the old file is given up either way
  }
  store = null;
  // a log left of a database that is gone must not be read into the new one
  if (!existsSync(path)) for (const f of [`${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  // one that cannot be opened says so itself, and is tried again
  if (!open()) return;
  say(
    now === null
      ? `warning: history ${path}: the file was gone; a new one is open`
      : `warning: history ${path}: another file was at its path; it is open`,
  );
}

open();
const checking = setInterval(checkFile, checkMs);
checking.unref();

/** handle()'s answer to a prune request or a query: it is answered when its last step is done. */
const PRUNING = Symbol("pruning");
const STEPPING = Symbol("stepping");

/** Rows written since the last prune; past PRUNE_AFTER_ROWS the thread prunes on its own. */
let sincePrune = 0;
let pruning = false;
/** Prune requests being stepped through, and what each deleted so far: a close answers them. */
const asked = new Map<number, number>();
const PRUNE_AFTER_ROWS = 100_000;

function handle(req: HistoryRequest): unknown {
  if (!store) {
    if (openError === null || req.op === "close") throw new Error("the history store is closed");
    throw new StoreUnavailable(openError);
  }
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
      // a level at its row limit is seconds of reading: a step a turn, as a query
      return searchInSteps(req.id, store.flowStatsSearch(req.query));
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
      stop();
      for (const id of asked.keys()) answerPrune(id);
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
  if (!store) {
    // closed between two steps (the close answered it), or its file went and none opens again
    pruning = false;
    if (id !== null && asked.has(id)) answerPrune(id);
    return;
  }
  pruning = true;
  let step: number;
  try {
    step = store.pruneStep();
  } catch (err) {
    pruning = false;
    if (id === null) return;
    asked.delete(id);
    port!.postMessage({ id, ok: false, error: (err as Error).message });
    return;
  }
  if (id !== null) asked.set(id, deleted + step);
  if (step > 0) return void setImmediate(() => pruneInSteps(id, deleted + step));
  pruning = false;
  if (id !== null) answerPrune(id);
}

/** Answers prune request `id` with what it deleted: when it is done, or when the store closes. */
function answerPrune(id: number): void {
  port!.postMessage({ id, ok: true, value: asked.get(id) ?? 0 } satisfies HistoryResponse);
  asked.delete(id);
}

/**
 * A query a step per turn of the thread's loop, for the same reason as the prune: one that no
 * index narrows reads a window of the store a step, and inserts are written between windows.
 */
function searchInSteps(id: number, search: HistorySearch | StatsSearch): typeof STEPPING {
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

/** No more reopening or checking: the store is being closed. */
function stop(): void {
  closed = true;
  clearInterval(checking);
  if (reopening) clearTimeout(reopening);
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
    if (err instanceof StoreUnavailable) res.unavailable = true;
  }
  if (req.op === "close") stop();
  port.postMessage(res);
  if (req.op === "close") port.close();
});
port.postMessage({
  id: 0,
  ok: openError === null,
  value: null,
  ...(openError === null ? {} : { error: openError }),
} satisfies HistoryResponse);
