// NATS: each event is published as its JSON to one subject. The client reconnects on its own
// (forever, every `reconnectWaitMs`); while it is not connected, batches are dropped and counted
// rather than buffered without bound. A write resolves once the server confirmed (PING/PONG
// flush) what it published, so a stalled server backs up only this sink's queue.
import { connect, DebugEvents, Events, type NatsConnection } from "nats";
import type { MoatEvent } from "../../datapath/event.ts";
import { eventJson } from "../../datapath/event-json.ts";
import type { EventSink } from "../sink.ts";
import type { PublisherFactory } from "./adapter.ts";
import { sleep } from "./backoff.ts";
import { natsTls } from "../../fleet/index.ts";

export interface NatsOptions {
  url: string;
  subject: string;
  /** Delay between reconnection attempts (default 2 s). */
  reconnectWaitMs?: number;
  /** How long a write waits for the server's confirmation (default 5 s). */
  flushTimeoutMs?: number;
}

export interface NatsStats {
  published: number;
  /** Events dropped: not connected, or published but never confirmed. */
  dropped: number;
  reconnects: number;
  connected: boolean;
}

export class NatsSink implements EventSink {
  readonly name: string;
  readonly stats: NatsStats = { published: 0, dropped: 0, reconnects: 0, connected: false };
  private readonly o: NatsOptions;
  private nc: NatsConnection | undefined;
  private readonly closing = new AbortController();
  private readonly connecting: Promise<void>;
  private readonly encoder = new TextEncoder();

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
    for (const ev of batch) nc.publish(this.o.subject, this.encoder.encode(eventJson(ev)));
    const timeoutMs = this.o.flushTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const confirmed = await Promise.race([
      nc.flush().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!confirmed) {
      this.stats.dropped += batch.length;
      throw new Error(`${this.name}: server did not confirm ${batch.length} events`);
    }
    this.stats.published += batch.length;
  }

  async close(): Promise<void> {
    this.closing.abort();
    const nc = this.nc;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    await this.connecting;
  }
}

export const natsPublisher: PublisherFactory<NatsOptions> = (o) => new NatsSink(o);
