// NATS: each event is published as its JSON to one subject. The client reconnects on its own
// (forever, every `reconnectWaitMs`); while it is not connected, batches are dropped and counted
// rather than buffered without bound. A write resolves once the server confirmed (PING/PONG
// flush) what it published, so a stalled server backs up only this sink's queue. A batch the
// server has not confirmed in time stays with the client (it may still arrive) and is counted
// when the server answers or the connection breaks; until then later batches are dropped
// unsent, so a server that stops reading holds at most one batch in moat's memory.
import { connect, DebugEvents, Events, type NatsConnection } from "nats";
import "../../fleet/nats-transport.ts";
import type { MoatEvent } from "../../datapath/event.ts";
import { eventJson } from "../../datapath/event-json.ts";
import type { EventSink } from "../sink.ts";
import type { PublisherFactory } from "./adapter.ts";
import { sleep } from "./backoff.ts";
import { closeBounded } from "./nats-close.ts";
import { natsTls } from "../../fleet/index.ts";

export interface NatsOptions {
  url: string;
  subject: string;
  /** Delay between reconnection attempts (default 2 s). */
  reconnectWaitMs?: number;
  /** How long a write waits for the server's confirmation (default 5 s). */
  flushTimeoutMs?: number;
  /** How often the client pings the server; 2 unanswered pings end the connection (default 5 s). */
  pingIntervalMs?: number;
}

/** Pings unanswered before the client gives a connection up as stale and reconnects. */
export const MAX_PINGS_OUT = 2;
export const PING_INTERVAL_MS = 5000;

export interface NatsStats {
  /** Events the server confirmed. */
  published: number;
  /**
   * Events dropped: never sent (not connected, or the server had not confirmed earlier events),
   * or sent on a connection that broke before the server confirmed them.
   */
  dropped: number;
  /** Events sent whose confirmation is still awaited past the write's time limit. */
  unconfirmed: number;
  reconnects: number;
  connected: boolean;
}

export class NatsSink implements EventSink {
  readonly name: string;
  readonly stats: NatsStats = {
    published: 0,
    dropped: 0,
    unconfirmed: 0,
    reconnects: 0,
    connected: false,
  };
  private readonly o: NatsOptions;
  private nc: NatsConnection | undefined;
  private readonly closing = new AbortController();
  private readonly connecting: Promise<void>;
  private readonly encoder = new TextEncoder();
  /** The confirmation of the last batch sent, while the server has not given it. */
  private awaiting: Promise<boolean> | undefined;

  constructor(o: NatsOptions) {
    this.o = o;
    const u = new URL(o.url);
    this.name = `nats ${u.host} ${o.subject}`;
    this.connecting = this.start();
  }

  /** Connects, retrying the first connection itself so that close() can stop it. */
  private async start(): Promise<void> {
    const waitMs = this.o.reconnectWaitMs ?? 2000;
    while (!this.closing.signal.aborted) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          ...natsTls(this.o.url),
          servers: this.o.url,
          name: "moat",
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: waitMs,
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
      this.stats.connected = true;
      void this.follow(nc); // its status stream does not end at close(): not awaited
      return;
    }
  }

  private async follow(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect || s.type === DebugEvents.Reconnecting)
        this.stats.connected = false;
      else if (s.type === Events.Reconnect) {
        this.stats.connected = true;
        this.stats.reconnects++;
      }
    }
    this.stats.connected = false;
  }

  async write(batch: readonly MoatEvent[]): Promise<void> {
    const nc = this.nc;
    if (!nc || !this.stats.connected || nc.isClosed()) {
      this.stats.dropped += batch.length;
      throw new Error(`${this.name}: not connected; dropped ${batch.length} events`);
    }
    if (this.awaiting) {
      // published now, they would only pile up in the client behind the unconfirmed batch
      this.stats.dropped += batch.length;
      throw new Error(
        `${this.name}: dropped ${batch.length} events: the server has not confirmed earlier ones`,
      );
    }
    for (const ev of batch) nc.publish(this.o.subject, this.encoder.encode(eventJson(ev)));
    const n = batch.length;
    const confirmation = nc.flush().then(
      () => true,
      () => false,
    );
    const timeoutMs = this.o.flushTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      confirmation,
      new Promise<undefined>(
        (resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)),
      ),
    ]);
    clearTimeout(timer);
    if (inTime === true) {
      this.stats.published += n;
      return;
    }
    if (inTime === false) {
      this.stats.dropped += n;
      throw new Error(`${this.name}: connection lost before the server confirmed ${n} events`);
    }
    // still with the client: counted when the server answers or the connection breaks
    this.stats.unconfirmed += n;
    this.awaiting = confirmation;
    void confirmation.then((ok) => {
      this.stats.unconfirmed -= n;
      if (ok) this.stats.published += n;
      else this.stats.dropped += n;
      this.awaiting = undefined;
    });
    throw new Error(
      `${this.name}: the server has not confirmed ${n} events in ${timeoutMs} ms; later batches are dropped until it does`,
    );
  }

  async close(): Promise<void> {
    this.closing.abort();
    await closeBounded(this.nc, this.o.flushTimeoutMs ?? 5000);
    await this.connecting;
  }
}

export const natsPublisher: PublisherFactory<NatsOptions> = (o) => new NatsSink(o);
