// A changed executable as moat's event (type "exe_changed"), so every sink (audit log, history,
// API subscribers, OpenTelemetry, webhooks, NATS) gets it the way it gets the rest: the
// connection fields are those of the connection it was seen with, `rule` and `reason` are
// "exe_changed", and `executable` holds the path, the content before and after, and the identity.
import type { ExecutableChange, MoatEvent } from "../../datapath/event.ts";
import type { FlowConnection } from "../flows/record.ts";

export function exeChangedEvent(
  change: ExecutableChange,
  c: FlowConnection,
  timeMs: number,
  mode: MoatEvent["mode"],
): MoatEvent {
  return {
    time: new Date(timeMs).toISOString(),
    type: "exe_changed",
    mode,
    rule: "exe_changed",
    direction: c.direction,
    protocol: c.protocol,
    local: { ...c.local },
    remote: { ...c.remote },
    interface: c.interface,
    process: c.process,
    layer7: null,
    connection: null,
    reason: "exe_changed",
    verdict: c.verdict,
    hook: c.hook,
    generation: c.generation,
    executable: change,
  };
}
