// Synthetic MoatEvents for observe/API tests.
import type { MoatEvent } from "../../src/datapath/events.ts";

export function fakeEvent(overrides: Partial<MoatEvent> = {}): MoatEvent {
  return {
    time: new Date().toISOString(),
    type: "blocked",
    mode: "prevent",
    rule: "default",
    direction: "ingress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 22 },
    remote: { ip: "203.0.113.9", port: 51514 },
    interface: "eth0",
    process: null,
    layer7: null,
    connection: "1a",
    reason: "new",
    verdict: "blocked",
    hook: "xdp",
    generation: 1,
    ...overrides,
  };
}
