// The daemon's own output: one JSON object per event, or one line per event with repeated
// detections and floods folded and control characters escaped (src/observe/repeat-summary.ts).
import type { MoatEvent } from "../datapath/event.ts";
import { eventJson } from "../datapath/event-json.ts";
import type { EventSink } from "./sink.ts";
import { foldedLines } from "./repeat-summary.ts";
import { formatNoticeLine } from "./notice.ts";

export function stdoutSink(log: (line: string) => void, json: boolean): EventSink {
  const text = json ? null : foldedLines({ emit: log });
  return {
    name: "stdout",
    write(batch: readonly MoatEvent[]) {
      if (text) text.write(batch);
      else for (const event of batch) log(eventJson(event));
    },
    notice(n) {
      log(json ? JSON.stringify({ notice: n }) : `${n.time} ${formatNoticeLine(n)}`);
    },
    close() {
      text?.close();
    },
  };
}
