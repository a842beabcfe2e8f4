// QUIC flows in events (docs/l7-quic.md): the kernel copies the first datagrams each socket
// sends to UDP 443; here their Initial packets are decrypted and the ClientHello read, and a
// flow whose decision is reported (detected, or a rule with `log: true`) gets a follow-up event
// with `layer7: { tls: { sni, ... }, quic: true }` and reason "quic_initial". Flows are held
// briefly and in bounded number: a client that never completes its ClientHello costs nothing.
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import {
  decodeQuicInitial,
  type GenerationRecord,
  type MoatEvent,
  type QuicDatagram,
  type WallTimeSource,
  wallTimeMs,
} from "../datapath/index.ts";
import { QuicInitialReader, type QuicClientHello } from "../l7/index.ts";

export interface QuicSource {
  subscribeQuic(onRecord: (record: Buffer) => void): unknown;
  readonly contents: Pick<GenerationRecord, "rule">;
}

/** Event times: by the daemon's kernel clock unless `clock` or a fixed `bootTimeMs` is given. */
export interface QuicPathOptions extends WallTimeSource {
  source: QuicSource;
  push: (event: MoatEvent) => void;
  process: (owner: KernelOwner) => ProcessFacts;
  /** The names the owner learned for a remote address (moat's DNS proxy). */
  names?: (owner: KernelOwner, ip: string) => string[];
}

/** Flows held at once, and for how long, waiting for the rest of a ClientHello. */
const MAX_FLOWS = 4096;
const FLOW_MS = 10_000;

interface Flow {
  reader: QuicInitialReader;
  since: number;
  /** Its follow-up event is out (a ClientHello read, or one that cannot be). */
  told: boolean;
}

/**
 * A ClientHello moat cannot read: its server name (and, as ever over QUIC, the certificate)
 * unseen, as a TLS connection's unreadable hello is reported (docs/l7-tls.md).
 */
const UNREAD = { unseen: ["sni", "certificate"] };

export function startQuicPath(options: QuicPathOptions): void {
  const flows = new Map<bigint, Flow>();
  const prune = (now: number) => {
    for (const [cookie, flow] of flows) {
      if (now - flow.since < FLOW_MS && flows.size < MAX_FLOWS) break;
      flows.delete(cookie);
    }
  };
  options.source.subscribeQuic((record) => {
    const d = decodeQuicInitial(record);
    const now = performance.now();
    prune(now);
    let flow = flows.get(d.cookie);
    if (!flow) {
      flow = { reader: new QuicInitialReader(), since: now, told: false };
      flows.set(d.cookie, flow);
    }
    // a flow read (or given up) stays until it expires: its later datagrams are not read again
    const hello = flow.reader.feed(d.data);
    if (flow.told) return;
    if (hello) report(d, helloFacts(hello));
    else if (flow.reader.unreadable) report(d, UNREAD);
    else return;
    flow.told = true;
  });

  function report(d: QuicDatagram, tls: Record<string, unknown>): void {
    if (d.rule === null) return; // left to the packet hooks: their event has the decision
    const rule = options.source.contents.rule(d.rule, d.generation);
    if (!rule || (d.verdict === "allowed" && !rule.log)) return;
    const event: MoatEvent = {
      time: new Date(wallTimeMs(Number(d.tsNs / 1_000_000n), options)).toISOString(),
      type: d.verdict,
      mode: rule.mode,
      rule: rule.name,
      direction: "egress",
      protocol: "udp",
      local: d.local,
      remote: { ...d.remote },
      interface: null,
      process: d.owner ? options.process(d.owner) : null,
      layer7: { tls, quic: true },
      connection: null,
      reason: "quic_initial",
      verdict: d.verdict,
      hook: "quic_initial",
      generation: d.generation,
    };
    const names = d.owner && options.names?.(d.owner, d.remote.ip);
    if (names?.length) event.remote.names = names;
    options.push(event);
  }
}

/** What an event says of a ClientHello read. */
function helloFacts(hello: QuicClientHello): Record<string, unknown> {
  return {
    ...(hello.sni !== undefined ? { sni: hello.sni } : {}),
    version: hello.versions.includes("1.3") ? "1.3" : (hello.versions[0] ?? ""),
    alpn: hello.alpn,
    ech: hello.ech,
  };
}
