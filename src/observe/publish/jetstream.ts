// JetStream: each event is published as its JSON to `<subject>.<host>`, a subject a stream of the
// fleet's cluster stores, with a message id of its own. A write resolves once the stream
// acknowledged every event of the batch (stored on a quorum of its replicas): delivery is at
// least once. An event not acknowledged is published again, with the same id, for at most
// `retryHorizonMs` (30 s): the stream stores it once as long as its duplicate window (2 min by
// default) covers that horizon. Then it is dropped and counted; the pipeline's bounded queue
// holds what waits meanwhile, and counts what it cannot hold. Nothing is sent again before the
// server has read the previous send (a PING/PONG flush): a server that stops reading holds one
// copy of one batch in moat's memory, not one per retry; a batch written while it has not read
// the last one is dropped unsent.
import { randomBytes } from "node:crypto";
import { connect, DebugEvents, Events, type JetStreamClient, type NatsConnection } from "nats";
import "../../fleet/nats-transport.ts";
import type { MoatEvent } from "../../datapath/event.ts";
import { eventJson } from "../../datapath/event-json.ts";
import {
  connectionOptions,
  eventSubject,
  RETRY_HORIZON_MS,
  type FleetConnectOptions,
} from "../../fleet/index.ts";
import type { EventSink } from "../sink.ts";
import type { PublisherFactory } from "./adapter.ts";
import { backoffMs, sleep } from "./backoff.ts";
import { closeBounded } from "./nats-close.ts";
import { MAX_PINGS_OUT, PING_INTERVAL_MS } from "./nats.ts";

export interface JetStreamOptions {
  connection: FleetConnectOptions;
  /** The subject prefix: events go to `<subject>.<host>`. */
  subject: string;
  host: string;
  /** How long an event is retried before it is dropped (default 30 s). */
  retryHorizonMs?: number;
  /** How long one publish waits for the stream's acknowledgement (default 5 s). */
  ackTimeoutMs?: number;
  /** How often the client pings the server; 2 unanswered pings end the connection (default 5 s). */
  pingIntervalMs?: number;
}

export { RETRY_HORIZON_MS };

export interface JetStreamStats {
  /** Events the stream acknowledged. */
  published: number;
  /** Acknowledged as duplicates: a retry of an event the stream already had. */
  duplicates: number;
  /** Publishes sent again after no acknowledgement came. */
  retries: number;
  /**
   * Events given up on after the retry horizon, or dropped unsent while the server had not read
   * an earlier send. One given up on while its send was still unread may yet be stored, once.
   */
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
  /** The flush after the last send, while the server has not answered it. */
  private unread: Promise<boolean> | undefined;

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
        nc = await connect({
          ...connectionOptions(this.o.connection),
          // a server that stops answering is left (and its unsent data dropped) in seconds
          pingInterval: this.o.pingIntervalMs ?? PING_INTERVAL_MS,
          maxPingOut: MAX_PINGS_OUT,
        });
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
    if (this.unread) {
      this.stats.dropped += batch.length;
      throw new Error(
        `${this.name}: dropped ${batch.length} events: the server has not confirmed earlier ones`,
      );
    }
    const deadline = Date.now() + (this.o.retryHorizonMs ?? RETRY_HORIZON_MS);
    const ackTimeoutMs = this.o.ackTimeoutMs ?? 5000;
    let pending = batch.map((ev) => ({
      data: this.encoder.encode(eventJson(ev)),
      msgID: `${this.idPrefix}-${++this.seq}`,
    }));
    let sentBefore = false;
    for (let attempt = 1; !this.closing.signal.aborted; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const { js, nc } = this;
      if (js && nc && this.stats.connected && !nc.isClosed()) {
        if (sentBefore) this.stats.retries += pending.length;
        sentBefore = true;
        const timeout = Math.max(100, Math.min(ackTimeoutMs, left));
        const acks = pending.map((p) =>
          js.publish(this.subject, p.data, { msgID: p.msgID, timeout }),
        );
        const read = this.sent(nc);
        const results = await Promise.allSettled(acks);
        const unacked: typeof pending = [];
        results.forEach((r, i) => {
          const p = pending[i];
          if (r.status === "rejected") {
            if (p) unacked.push(p);
            return;
          }
          if (r.value.duplicate) this.stats.duplicates++;
          this.stats.published++;
        });
        pending = unacked;
        if (pending.length === 0) {
          this.unread = undefined; // every event acknowledged: the server read them all
          return;
        }
        // no acknowledgement: the stream may or may not have them; the same ids again, but only
        // once the server read this send (or the connection broke and the client dropped it)
        if (!(await this.within(read, deadline))) break;
      }
      const wait = Math.min(backoffMs(attempt, 100, 2000), deadline - Date.now());
      if (wait <= 0 || !(await sleep(wait, this.closing.signal))) break;
    }
    this.stats.dropped += pending.length;
    throw new Error(
      `${this.name}: ${pending.length} of ${batch.length} events not acknowledged in time`,
    );
  }

  /** A flush after what was just published: true once the server read it, false if it broke. */
  private sent(nc: NatsConnection): Promise<boolean> {
    const read = nc.flush().then(
      () => true,
      () => false,
    );
    this.unread = read;
    void read.then(() => {
      if (this.unread === read) this.unread = undefined;
    });
    return read;
  }

  /** Whether `read` settled before `deadline` (or close()). */
  private async within(read: Promise<boolean>, deadline: number): Promise<boolean> {
    const waited = new AbortController();
    const settled = await Promise.race([
      read.then(() => true),
      sleep(deadline - Date.now(), AbortSignal.any([this.closing.signal, waited.signal])).then(
        () => false,
      ),
    ]);
    waited.abort();
    return settled;
  }

  async close(): Promise<void> {
    this.closing.abort();
    await closeBounded(this.nc, this.o.ackTimeoutMs ?? 5000);
    await this.connecting;
  }
}

export const jetstreamPublisher: PublisherFactory<JetStreamOptions> = (o) => new JetStreamSink(o);
