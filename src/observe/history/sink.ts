// The history store as a pipeline sink; prunes on a timer so retention holds while running.
import type { MoatEvent } from "../../datapath/events.ts";
import type { EventSink } from "../sink.ts";
import type { HistoryStore } from "./store.ts";

const PRUNE_EVERY_MS = 60_000;

export function historySink(store: HistoryStore, log: (line: string) => void): EventSink {
  const timer = setInterval(() => {
    try {
      store.prune();
    } catch (err) {
      log(`warning: history pruning failed: ${(err as Error).message}`);
    }
  }, PRUNE_EVERY_MS);
  timer.unref();
  return {
    name: "history",
    write(batch: readonly MoatEvent[]) {
      store.insert(batch);
    },
    close() {
      clearInterval(timer);
      store.close();
    },
  };
}
