// JetStream: each event is published as its JSON to `<subject>.<host>`, a subject a stream of the
// fleet's cluster stores, with a message id of its own. A write resolves once the stream
// acknowledged every event of the batch (stored on a quorum of its replicas): delivery is at
// least once. An event not acknowledged is published again, with the same id, for at most
// `retryHorizonMs` (30 s): the stream stores it once as long as its duplicate window (2 min by
// default) covers that horizon. Then it is dropped and counted; the pipeline's bounded queue
// holds what waits meanwhile, and counts what it cannot hold.
import { randomBytes } from "node:crypto";
import { DebugEvents, Events, type JetStreamClient, type NatsConnection } from "nats";
import type { MoatEvent } from "../../datapath/event.ts";
import { eventJson } from "../../datapath/event-json.ts";
import {
  connectFleet,
  eventSubject,
  RETRY_HORIZON_MS,
  type FleetConnectOptions,
} from "../../fleet/index.ts";
import type { EventSink } from "../sink.ts";
import type { PublisherFactory } from "./adapter.ts";
import { backoffMs, sleep } from "./backoff.ts";

export interface JetStreamOptions {
  connection: FleetConnectOptions;
  /** The subject prefix: events go to `<subject>.<host>`. */
  subject: string;
  host: string;
  /** How long an event is retried before it is dropped (default 30 s). */
  retryHorizonMs?: number;
  /** How long one publish waits for the stream's acknowledgement (default 5 s). */
  ackTimeoutMs?: number;
}

export { RETRY_HORIZON_MS };

export interface JetStreamStats {
  /** Events the stream acknowledged. */
  published: number;
  /** Acknowledged as duplicates: a retry of an event the stream already had. */
  duplicates: number;
  /** Publishes sent again after no acknowledgement came. */
  retries: number;
  /** Events given up on after the retry horizon. */
  dropped: number;
  connected: boolean;
}

export class JetStreamSink implements EventSink {
  readonly name: string;
  readonly stats: JetStreamStats = {
    published: 0,
    duplicates: 0,
    retries: 0,
    dropped: 0,
    connected: false,
  };
  private readonly o: JetStreamOptions;
  private readonly subject: string;
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private readonly closing = new AbortController();
  private readonly connecting: Promise<void>;
  private readonly encoder = new TextEncoder();
  /** Message ids: this sink's own prefix and a sequence, fixed when an event is first sent. */
  private readonly idPrefix: string;
  private seq = 0;

  constructor(o: JetStreamOptions) {
    this.o = o;
    this.subject = eventSubject(o.subject, o.host);
    this.idPrefix = `${o.host}-${randomBytes(8).toString("hex")}`;
    const first = Array.isArray(o.connection.url) ? o.connection.url[0] : o.connection.url;
    this.name = `jetstream ${new URL(first ?? "nats://?").host} ${this.subject}`;
    this.connecting = this.start();
  }

  /** Connects, retrying the first connection itself so that close() can stop it. */
  private async start(): Promise<void> {
    const waitMs = this.o.connection.reconnectWaitMs ?? 2000;
    while (!this.closing.signal.aborted) {
      let nc: NatsConnection;
      try {
        nc = await connectFleet(this.o.connection);
      } catch {
        await sleep(waitMs, this.closing.signal);
        continue;
      }
      if (this.closing.signal.aborted) return void (await nc.close());
      this.nc = nc;
      this.js = nc.jetstream();
      this.stats.connected = true;
      void this.follow(nc); // its status stream does not end at close(): not awaited
      return;
    }
  }

  private async follow(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect || s.type === DebugEvents.Reconnecting)
        this.stats.connected = false;
      else if (s.type === Events.Reconnect) this.stats.connected = true;
    }
    this.stats.connected = false;
  }

  async write(batch: readonly MoatEvent[]): Promise<void> {
    const deadline = Date.now() + (this.o.retryHorizonMs ?? RETRY_HORIZON_MS);
    const sent = await Promise.all(
      batch.map((ev) => this.publish(eventJson(ev), `${this.idPrefix}-${++this.seq}`, deadline)),
    );
    const lost = sent.filter((ok) => !ok).length;
    if (lost > 0) {
      this.stats.dropped += lost;
      throw new Error(`${this.name}: ${lost} of ${batch.length} events not acknowledged in time`);
    }
  }

  /** Publishes until acknowledged or past `deadline`; true once the stream has it. */
  private async publish(json: string, msgID: string, deadline: number): Promise<boolean> {
    const data = this.encoder.encode(json);
    const ackTimeoutMs = this.o.ackTimeoutMs ?? 5000;
    for (let attempt = 1; ; attempt++) {
      const js = this.js;
      const left = deadline - Date.now();
      if (left <= 0 || this.closing.signal.aborted) return false;
      if (js && this.stats.connected) {
        if (attempt > 1) this.stats.retries++;
        try {
          const ack = await js.publish(this.subject, data, {
            msgID,
            timeout: Math.max(100, Math.min(ackTimeoutMs, left)),
          });
          if (ack.duplicate) this.stats.duplicates++;
          this.stats.published++;
          return true;
        } catch {
          // no acknowledgement: the stream may or may not have it; the same id again
        }
      }
      const wait = Math.min(backoffMs(attempt, 100, 2000), deadline - Date.now());
      if (wait <= 0 || !(await sleep(wait, this.closing.signal))) return false;
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    const nc = this.nc;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    await this.connecting;
  }
}

export const jetstreamPublisher: PublisherFactory<JetStreamOptions> = (o) => new JetStreamSink(o);
