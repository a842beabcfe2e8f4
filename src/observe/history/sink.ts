// The history store as a pipeline sink; prunes on a timer so retention holds while running.
// Works with the store itself or with its worker thread (remote.ts), which the daemon uses.
import type { MoatEvent } from "../../datapath/event.ts";
import type { EventSink } from "../sink.ts";
import type { Notice } from "../notice.ts";
import { HistoryUnavailableError } from "./remote.ts";

const PRUNE_EVERY_MS = 60_000;

/**
 * How long the history's first queued event waits for others to share its batch (the pipeline's
 * lingerMs): a batch is a message to the history's thread and a transaction there.
 */
export const HISTORY_LINGER_MS = 10;

/**
 * Batches handed to the history's thread before the first is written (EventSink.batchesInFlight):
 * its thread takes the next batch as soon as it committed one, never waiting for the daemon's
 * thread to hear of it first; and a backlog waits there, serialised, not on the daemon's heap.
 * The pipeline's capacity bounds the events in flight as it bounds those queued.
 */
export const HISTORY_BATCHES_IN_FLIGHT = 16;

/** What the sink needs of a store: HistoryStore (synchronous) or HistoryWorker. */
export interface HistoryBackend {
  insert(batch: readonly MoatEvent[]): void | Promise<void>;
  notice(notice: Notice): void | Promise<void>;
  prune(): number | Promise<number>;
  close(): void | Promise<void>;
}

export function historySink(store: HistoryBackend, log: (line: string) => void): EventSink {
  const prune = () =>
    Promise.resolve()
      .then(() => store.prune())
      .catch((err: Error) => {
        // a store that could not be opened says so itself, and again when it opens
        if (!(err instanceof HistoryUnavailableError))
          log(`warning: history pruning failed: ${err.message}`);
      });
  void prune(); // limits may have shrunk since the last run
  const timer = setInterval(() => void prune(), PRUNE_EVERY_MS);
  timer.unref();
  return {
    name: "history",
    batchesInFlight: HISTORY_BATCHES_IN_FLIGHT,
    write(batch: readonly MoatEvent[]) {
      return store.insert(batch);
    },
    notice(n) {
      Promise.resolve()
        .then(() => store.notice(n))
        .catch((err: Error) => {
          if (!(err instanceof HistoryUnavailableError))
            log(`warning: history: a notice was not kept: ${err.message}`);
        });
    },
    close() {
      clearInterval(timer);
      return store.close();
    },
  };
}
