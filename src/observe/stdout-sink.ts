// The daemon's own output: one line (or one JSON object) per event.
import type { MoatEvent } from "../datapath/event.ts";
import { formatEventLine } from "../datapath/event.ts";
import type { EventSink } from "./sink.ts";

export function stdoutSink(log: (line: string) => void, json: boolean): EventSink {
  return {
    name: "stdout",
    write(batch: readonly MoatEvent[]) {
      for (const event of batch) log(json ? JSON.stringify(event) : formatEventLine(event));
    },
    close() {},
  };
}
