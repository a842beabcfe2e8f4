// GET /v1/flows/stream: the aggregated flows as Server-Sent Events. A subscriber first gets
// `event: snapshot` (every row held), then `event: delta` (rows changed, rows evicted) at most
// once per interval. The aggregator is one pipeline sink shared by every subscriber; each delta
// is serialised once. A subscriber whose connection still holds a delta's worth of unsent bytes
// skips deltas and gets a fresh snapshot once it has room.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MoatEvent } from "../datapath/index.ts";
import type { EventSink } from "../observe/sink.ts";
import { HttpError } from "./errors.ts";
import { FlowAggregator, type FlowDelta } from "./flow-aggregator.ts";
import { toJson } from "./json.ts";
import { describePrincipal, type Principal } from "./principal.ts";

export const FLOW_LIMITS = {
  intervalMs: 250,
  /** Subscribers over TCP at once; the unix socket (root) has as many of its own. */
  maxSubscribers: 64,
  /** Subscribers one caller (a token, a console session) may hold. */
  maxPerPrincipal: 16,
  /** Unsent bytes past which a subscriber skips deltas. */
  maxBufferedBytes: 1 << 20,
};

interface FlowSubscriber {
  res: ServerResponse;
  /** Whose it is (describePrincipal), and its pool: root's or TCP's. */
  who: string;
  unix: boolean;
  /** Skipped a delta: its next message is a full snapshot. */
  stale: boolean;
}

export class FlowHub implements EventSink {
  readonly name = "api-flows";
  private readonly aggregator = new FlowAggregator();
  private readonly subscribers = new Set<FlowSubscriber>();
  private readonly timer: NodeJS.Timeout;
  private register: (() => void) | null;
  private ticks = 0;

  constructor(register: (() => void) | null, limits = FLOW_LIMITS) {
    this.register = register;
    this.timer = setInterval(() => this.tick(), limits.intervalMs);
    this.timer.unref();
  }

  get registered(): boolean {
    return this.register === null;
  }

  write(batch: readonly MoatEvent[]): void {
    for (const e of batch) this.aggregator.add(e);
  }

  subscribe(req: IncomingMessage, res: ServerResponse, principal: Principal): void {
    // root is never refused for TCP callers' streams: each has its own pool
    const unix = principal.kind === "unix";
    const who = describePrincipal(principal);
    let pool = 0;
    let mine = 0;
    for (const s of this.subscribers) {
      if (s.unix === unix) pool++;
      if (s.who === who) mine++;
    }
    if (pool >= FLOW_LIMITS.maxSubscribers)
      throw new HttpError(503, "ESUBSCRIBERS", "too many flow subscribers; try again later");
    if (!unix && mine >= FLOW_LIMITS.maxPerPrincipal)
      throw new HttpError(
        429,
        "ESUBSCRIBERS",
        `${who} holds as many flow streams as one caller may (${FLOW_LIMITS.maxPerPrincipal})`,
      );
    this.register?.();
    this.register = null;
    const s: FlowSubscriber = { res, who, unix, stale: false };
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    res.write(frame("snapshot", this.aggregator.snapshot()));
    this.subscribers.add(s);
    const done = () => this.subscribers.delete(s);
    req.once("close", done);
    res.once("close", done);
  }

  private tick(): void {
    this.ticks++;
    const delta = this.aggregator.drain();
    if (this.subscribers.size === 0) return;
    const bytes: string | null = delta ? frame("delta", delta) : null;
    let snapshot: string | null = null;
    for (const s of this.subscribers) {
      if (s.res.writableLength > FLOW_LIMITS.maxBufferedBytes) {
        s.stale ||= bytes !== null;
        continue;
      }
      if (s.stale) {
        snapshot ??= frame("snapshot", this.aggregator.snapshot());
        s.res.write(snapshot);
        s.stale = false;
      } else if (bytes) s.res.write(bytes);
      else if (this.ticks % 60 === 0) s.res.write(": keepalive\n\n");
    }
  }

  close(): void {
    this.register = null;
    clearInterval(this.timer);
    for (const s of this.subscribers) s.res.end();
    this.subscribers.clear();
  }
}

function frame(type: "snapshot" | "delta", value: FlowDelta): string {
  return `event: ${type}\ndata: ${toJson(value)}\n\n`;
}
