// The daemon's own output: one line (or one JSON object) per event. Text lines summarise floods
// (flood-summary.ts); JSON output, read by programs, has every event.
import type { MoatEvent } from "../datapath/events.ts";
import { formatEventLine } from "../datapath/events.ts";
import { FloodSummary } from "./flood-summary.ts";
import type { EventSink } from "./sink.ts";

export function stdoutSink(log: (line: string) => void, json: boolean): EventSink {
  const floods = json ? null : new FloodSummary(log);
  return {
    name: "stdout",
    write(batch: readonly MoatEvent[]) {
      for (const event of batch) {
        if (floods && !floods.admit(event)) continue;
        log(json ? JSON.stringify(event) : formatEventLine(event));
      }
    },
    close() {
      floods?.close();
    },
  };
}
