// The daemon's own output: one JSON object per event, or one line per event with repeated
// detections and floods folded (src/observe/repeat-summary.ts). Every line is made safe to print
// where it is made: an event's line by formatEventLine (each field escaped, quoted when it holds
// a space), an event's JSON with every character outside printable ASCII written \uXXXX, as the
// CLI's other --json outputs write it (asciiJson).
import type { MoatEvent } from "../datapath/event.ts";
import { asciiJson, eventJson } from "../datapath/event-json.ts";
import type { EventSink } from "./sink.ts";
import { foldedLines } from "./repeat-summary.ts";
import { formatNoticeLine } from "./notice.ts";

/**
 * Where the daemon logs. `moat run`'s escapes every line it is given (a message may quote a
 * peer); `verbatim`, when there, writes a line already safe to print (these sinks' lines) as it
 * is, not escaped twice.
 */
export interface DaemonLog {
  (line: string): void;
  verbatim?: (line: string) => void;
}

export function stdoutSink(log: DaemonLog, json: boolean): EventSink {
  const write = log.verbatim ?? log;
  const text = json ? null : foldedLines({ emit: write });
  return {
    name: "stdout",
    write(batch: readonly MoatEvent[]) {
      if (text) text.write(batch);
      else for (const event of batch) write(asciiJson(eventJson(event)));
    },
    notice(n) {
      write(json ? asciiJson(JSON.stringify({ notice: n })) : `${n.time} ${formatNoticeLine(n)}`);
    },
    close() {
      text?.close();
    },
  };
}
