// The daemon's own output: one line (or one JSON object) per event, control characters escaped.
import type { MoatEvent } from "../datapath/events.ts";
import { formatEventLine } from "../datapath/events.ts";
import type { EventSink } from "./sink.ts";
import { printable } from "../config/printable.ts";

export function stdoutSink(log: (line: string) => void, json: boolean): EventSink {
  return {
    name: "stdout",
    write(batch: readonly MoatEvent[]) {
      // process and interface names are anyone's to choose: never raw control characters
      for (const event of batch)
        log(json ? JSON.stringify(event) : printable(formatEventLine(event)));
    },
    close() {},
  };
}
