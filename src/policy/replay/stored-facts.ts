// A stored event (the history's JSON of an event, whatever its type) as the facts the reference
// evaluator judges: direction, protocol, addresses and ports, the remote's names, the process,
// the interface and the layer7 facts, as far as the event recorded them. What the event does not
// say stays unknown, so a rule that needs it "maybe" matches (the evaluator defers); nothing is
// guessed. Events that are not a connection judged by the rules (a DNS exchange, judged by the
// dns section) are not replayable.
import type { ConnectionFacts, KnownProcess, Layer7Facts } from "../facts.ts";

/** What replay reads of a stored event (src/datapath/event.ts MoatEvent fits it). */
export interface StoredEvent {
  /** The history's row id, when read from the store. */
  id?: number;
  time: string;
  type: string;
  verdict: string;
  rule: string;
  direction: string;
  protocol: string | number;
  local: { ip: string; port?: number };
  remote: { ip: string; port?: number; names?: string[] };
  interface?: string | null;
  process?: KnownProcess | null;
  layer7?: StoredLayer7 | null;
  icmp?: { type: number; code: number };
  connection?: string | null;
  /** A DNS exchange of moat's DNS proxy: judged by the dns section, not replayed. */
  dns?: unknown;
  /**
   * A summary of several connections with these facts (a flow record): how many it covers.
   * Only the allowed ones are replayed (as that many): a blocked or detected connection is
   * stored as an event of its own.
   */
  flow?: { connections: number };
}

/** The layer7 facts as events report them (src/datapath/event.ts EventLayer7). */
export interface StoredLayer7 {
  dns?: { name: string };
  quic?: true;
  http?: Record<string, unknown> & { method?: string; host?: string; path?: string };
  tls?: Record<string, unknown> & { sni?: string };
  ssh?: Record<string, unknown>;
}

/** Why a stored event cannot be replayed. */
export type NotReplayable = "dns";

const PORTED = new Set(["tcp", "udp"]);

/** The event's connection facts, or why it has none to replay. */
export function storedFacts(e: StoredEvent): ConnectionFacts | NotReplayable {
  if (e.dns !== undefined) return "dns";
  const protocol =
    typeof e.protocol === "string" && /^\d+$/.test(e.protocol) ? Number(e.protocol) : e.protocol;
  const ported = typeof protocol === "string" && PORTED.has(protocol);
  const facts: ConnectionFacts = {
    direction: e.direction as ConnectionFacts["direction"],
    protocol: protocol as ConnectionFacts["protocol"],
    family: e.remote.ip.includes(":") ? 6 : 4,
    local: ported ? { ip: e.local.ip, port: e.local.port } : { ip: e.local.ip },
    remote: ported ? { ip: e.remote.ip, port: e.remote.port } : { ip: e.remote.ip },
  };
  if (e.remote.names) facts.remote.names = e.remote.names;
  if (e.icmp) facts.icmp = e.icmp;
  if (e.process) facts.process = e.process;
  if (e.interface) facts.interface = { name: e.interface };
  if (e.layer7) facts.layer7 = storedLayer7(e.layer7);
  return facts;
}

const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** null: moat's relay never saw the connection (unknown); {}: it saw no protocol it knows. */
function storedLayer7(l: StoredLayer7): Layer7Facts {
  if (l.dns) return { dns: { name: l.dns.name } };
  if (l.http)
    // events never carry the headers: absent, so a header rule is "maybe"
    return {
      http: {
        method: text(l.http.method) ?? "",
        host: text(l.http.host) ?? "",
        path: text(l.http.path) ?? "",
        version: text(l.http.version) ?? "1.1",
      },
    };
  if (l.tls) return { tls: l.tls };
  if (l.ssh) return { ssh: l.ssh };
  return {};
}
