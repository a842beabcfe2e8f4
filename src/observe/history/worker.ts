// The history store's own thread: SQLite inserts take 14-35 µs an event, which on the daemon's
// event loop would hold up the ring-buffer drain and every other sink (docs/observability.md).
// Requests are handled in order; each is answered with its id.
import { parentPort, workerData } from "node:worker_threads";
import { HistoryStore, type HistoryOptions } from "./store.ts";
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

function handle(req: HistoryRequest): unknown {
  if (!store) throw new Error(openError ?? "the history store is closed");
  switch (req.op) {
    case "insert":
      store.insertRows(req.rows);
      return null;
    case "flows":
      store.insertFlows(req.summaries);
      return null;
    case "flowStats":
      return store.flowStats(req.query);
    case "notice":
      store.notice(req.notice);
      return null;
    case "query":
      return store.query(req.query);
    case "prune":
      return store.prune();
    case "close":
      store.close();
      store = null;
      return null;
  }
}

port.on("message", (req: HistoryRequest) => {
  let res: HistoryResponse;
  try {
    res = { id: req.id, ok: true, value: handle(req) };
  } catch (err) {
    res = { id: req.id, ok: false, error: (err as Error).message };
  }
  port.postMessage(res);
  if (req.op === "close") port.close();
});
port.postMessage({ id: 0, ok: openError === null, error: openError ?? undefined, value: null });
