// A week of generated flow history for learning tests: a few identities, each flow's summaries
// with injected timestamps, written through the history store (events and roll-ups) as the
// daemon writes them, and the same flows as stored events for replay.
import type { FlowSummary } from "../../src/observe/flows/record.ts";
import type { StoredEvent } from "../../src/policy/index.ts";
import type { ProcessFacts } from "../../src/policy/facts.ts";
import { fakeEvent } from "./events.ts";

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
/** The generated history's "now". */
export const NOW = Date.parse("2026-11-30T12:00:00Z");

export interface GenFlow {
  process: Omit<ProcessFacts, "pid"> | null;
  direction: "egress" | "ingress";
  protocol: "tcp" | "udp";
  peer: { ip: string; name?: string };
  port: number;
  verdict: "allowed" | "blocked" | "detected";
  rule?: string;
  /** First seen this long before NOW (default 7 days); one summary an hour after, every 6 h. */
  firstAgoMs?: number;
  connections?: number;
}

export const proc = (path: string, user: number, container = ""): Omit<ProcessFacts, "pid"> => ({
  name: path.slice(path.lastIndexOf("/") + 1).slice(0, 15),
  path,
  user,
  cgroup: "/system.slice/x.service",
  container: container ? { id: container, name: container, image: "img" } : null,
});

/** The flows' summaries, newest last, every 6 hours from first seen to `now`. */
export function summaries(flows: readonly GenFlow[], now = NOW): FlowSummary[] {
  const out: FlowSummary[] = [];
  for (const f of flows) {
    const first = now - (f.firstAgoMs ?? 7 * DAY);
    for (let t = first; t < now; t += 6 * HOUR) {
      const server = { ip: "10.0.0.2", port: f.port };
      const client = { ip: f.peer.ip, port: 40000 };
      const connection = fakeEvent({
        time: new Date(t).toISOString(),
        type: f.verdict,
        mode: "detect",
        verdict: f.verdict,
        rule: f.rule ?? "default",
        direction: f.direction,
        protocol: f.protocol,
        local: f.direction === "egress" ? { ip: "10.0.0.2", port: 40000 } : server,
        remote:
          f.direction === "egress"
            ? { ip: f.peer.ip, port: f.port, ...(f.peer.name ? { names: [f.peer.name] } : {}) }
            : client,
        process: f.process ? { pid: 100, ...f.process } : null,
        hook: "connect",
      });
      const n = f.connections ?? 2;
      out.push({
        connection,
        connections: n,
        closed: n,
        packets: 10 * n,
        bytes: 1000 * n,
        durationMsSum: 100 * n,
        durationMsMax: 100,
        firstMs: t,
        lastMs: t + 1000,
      });
    }
  }
  return out;
}

/** Each summary as a stored event of one connection (what replay reads). */
export function storedEvents(list: readonly FlowSummary[]): StoredEvent[] {
  return list.map((s, i) => ({
    ...s.connection,
    time: new Date(s.firstMs).toISOString(),
    type: s.connection.verdict,
    connection: `c${i}`,
  }));
}
