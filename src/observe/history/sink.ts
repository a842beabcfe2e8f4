// The history store as a pipeline sink; prunes on a timer so retention holds while running.
import type { MoatEvent } from "../../datapath/events.ts";
import type { EventSink } from "../sink.ts";
import type { HistoryStore } from "./store.ts";

const PRUNE_EVERY_MS = 60_000;

export function historySink(store: HistoryStore, log: (line: string) => void): EventSink {
  const prune = () => {
    try {
      store.prune();
    } catch (err) {
      log(`warning: history pruning failed: ${(err as Error).message}`);
    }
  };
  prune(); // limits may have shrunk since the last run
  const timer = setInterval(prune, PRUNE_EVERY_MS);
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
