// Live subscribers (SSE and WebSocket) as one pipeline sink: each event is serialised once
// (eventJson, shared with the history) and the same bytes go to every subscriber whose filter
// matches: subscribers with the same filter share one buffer per batch, written in one call. A subscriber whose connection holds more than its byte bound
// unsent skips events, counted (`api-subscriber` dropped), and is told how many when it catches
// up; nothing is buffered without bound. The bound is a share of one budget while few subscribe
// (a lone reader that pauses for a few ms at a flood's rate skips nothing), and a fixed floor
// per subscriber when many do. Each connection's kernel send buffer is sized to the same bound,
// so a client reads on while the daemon's loop is busy. At most `maxSubscribers` at once.
import { eventJson, type MoatEvent } from "../datapath/index.ts";
import { matchesFilter, type EventFilter } from "../observe/filter.ts";
import type { EventSink } from "../observe/sink.ts";
import type { Notice } from "../observe/notice.ts";
import { HttpError } from "./errors.ts";
import { toJson } from "./json.ts";

export interface SubscriberLimits {
  maxSubscribers: number;
  /** Bytes a subscriber's connection may hold unsent before it skips events, at the least. */
  maxBufferedBytes: number;
  /**
   * Bytes all subscribers' connections may hold unsent together (default 0): each may hold its
   * share of this where that is more than maxBufferedBytes. Together they hold at most the
   * larger of this and maxBufferedBytes times their number, plus a batch each; their kernel
   * send buffers (Channel.sendBuffer) as much again.
   */
  sharedBufferedBytes?: number;
  keepaliveMs: number;
}

export const SUBSCRIBER_LIMITS: SubscriberLimits = {
  maxSubscribers: 1024,
  maxBufferedBytes: 256 << 10,
  // 8 MiB: a lone subscriber rides out ~230 ms of not reading at 100k events/s (~360 bytes
  // each as SSE); from 32 subscribers on each has the 256 KiB floor
  sharedBufferedBytes: 8 << 20,
  keepaliveMs: 15_000,
};

/** How events are framed on a subscriber's connection. */
export type Framing = "sse" | "websocket";

export interface Channel {
  framing: Framing;
  write(bytes: Buffer): void;
  /** Bytes written and not yet taken by the kernel. */
  buffered(): number;
  keepalive(): void;
  /** Told after events were skipped, once the subscriber has room again (SSE: a comment). */
  lost?(count: number): void;
  /**
   * Asks the kernel to hold up to `bytes` unsent on the connection (its send buffer), so that the
   * client reads on while the daemon's loop is busy; told again when the subscriber's share of
   * the budget changes.
   */
  sendBuffer?(bytes: number): void;
  end(): void;
}

interface Subscriber {
  filter: EventFilter;
  /** Subscribers with the same key share the bytes of a batch. */
  key: string;
  channel: Channel;
  lost: number;
  /** The bound its send buffer was last sized to (0: not yet). */
  sized: number;
}

/**
 * The events of a batch that pass `filter`, framed for `framing`, as one buffer. Its bytes are
 * counted first and written straight into it: building the batch as one string and encoding it
 * at once (Buffer.from) cost several times as much for a large batch, as did gathering the
 * bytes in parts and joining them.
 */
function framed(
  batch: readonly MoatEvent[],
  filter: EventFilter,
  framing: Framing,
): { bytes: Buffer; count: number } {
  let count = 0;
  let size = 0;
  const texts: string[] = [];
  if (framing === "sse") {
    // many events' lines per text: one write per event cost more than joining them
    let text = "";
    for (const e of batch)
      if (matchesFilter(filter, e)) {
        text += `event: ${e.type}\ndata: ${eventJson(e)}\n\n`;
        count++;
        if (text.length >= SSE_TEXT) {
          size += Buffer.byteLength(text);
          texts.push(text);
          text = "";
        }
      }
    if (text) {
      size += Buffer.byteLength(text);
      texts.push(text);
    }
    const bytes = Buffer.allocUnsafe(size);
    let at = 0;
    for (const t of texts) at += bytes.write(t, at);
    // bytes counted that the write did not fill (never seen) are not sent: the slow way then
    return { bytes: at === size ? bytes : Buffer.from(texts.join("")), count };
  }
  const lengths: number[] = [];
  for (const e of batch)
    if (matchesFilter(filter, e)) {
      const json = eventJson(e);
      const n = Buffer.byteLength(json);
      texts.push(json);
      lengths.push(n);
      size += headerBytes(n) + n;
      count++;
    }
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    at = writeHeader(bytes, at, lengths[i]!);
    at += bytes.write(texts[i]!, at);
  }
  // bytes counted that the write did not fill (never seen) are not sent: the slow way then
  if (at !== size) return { bytes: Buffer.concat(texts.map((t) => wsText(Buffer.from(t)))), count };
  return { bytes, count };
}

/** SSE lines gathered into one text before it is measured and written, in UTF-16 units. */
const SSE_TEXT = 16 << 10;

/** A WebSocket text frame's header bytes for a payload of `n` bytes. */
const headerBytes = (n: number) => (n < 126 ? 2 : n < 65536 ? 4 : 10);

/** wsText's header of a text frame of `n` bytes, written at `at`; returns where it ends. */
function writeHeader(out: Buffer, at: number, n: number): number {
  out[at++] = 0x81;
  if (n < 126) {
    out[at++] = n;
    return at;
  }
  if (n < 65536) {
    out[at++] = 126;
    out[at++] = n >> 8;
    out[at++] = n & 255;
    return at;
  }
  out[at++] = 127;
  out.writeUInt32BE(0, at);
  out.writeUInt32BE(n, at + 4);
  return at + 8;
}

/** A WebSocket text frame (server frames are not masked). */
export function wsText(payload: Buffer, opcode = 0x1): Buffer {
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0x80 | opcode, n])
      : n < 65536
        ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
        : Buffer.from([0x80 | opcode, 127, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (n >= 65536) head.writeUInt32BE(n, 6);
  return Buffer.concat([head, payload]);
}

/** Subscribers served per event-loop turn. */
const SLICE = 64;

export class SubscriberHub implements EventSink {
  readonly name = "api-subscriber";
  private readonly subscribers = new Set<Subscriber>();
  private readonly limits: SubscriberLimits;
  private readonly timer: NodeJS.Timeout;
  /** Puts the hub into the pipeline; called with the first subscriber, so none costs nothing. */
  private register: (() => void) | null;
  /** (event, subscriber) pairs sent and skipped. */
  private sent = 0;
  private skipped = 0;

  constructor(limits: SubscriberLimits = SUBSCRIBER_LIMITS, register: (() => void) | null = null) {
    this.limits = limits;
    this.register = register;
    this.timer = setInterval(() => {
      for (const s of this.subscribers) s.channel.keepalive();
    }, limits.keepaliveMs);
    this.timer.unref();
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Bytes a subscriber's connection may hold unsent, however many subscribe. */
  get maxBufferedBytes(): number {
    return this.limits.maxBufferedBytes;
  }

  /** Bytes each subscriber's connection may hold unsent now: its share of the budget, or more. */
  private bound(): number {
    const share = (this.limits.sharedBufferedBytes ?? 0) / Math.max(1, this.subscribers.size);
    return Math.max(this.limits.maxBufferedBytes, Math.floor(share));
  }

  /** Registers a subscriber (503 when full); returns the function to call when it goes. */
  add(filter: EventFilter, channel: Channel): () => void {
    if (this.subscribers.size >= this.limits.maxSubscribers)
      throw new HttpError(
        503,
        "ESUBSCRIBERS",
        `too many live subscribers (${this.limits.maxSubscribers}); try again later`,
      );
    const s: Subscriber = {
      filter,
      key: filterKey(filter, channel.framing),
      channel,
      lost: 0,
      sized: 0,
    };
    this.register?.();
    this.register = null;
    this.subscribers.add(s);
    this.sizeSendBuffers();
    return () => {
      if (this.subscribers.delete(s)) this.sizeSendBuffers();
    };
  }

  /**
   * Each connection's kernel send buffer holds what its share of the budget allows (so the kernel
   * holds at most as much again as the connections' own buffers). Only the subscribers whose
   * share changed are told: from 32 subscribers on the share is the floor and stays.
   */
  private sizeSendBuffers(): void {
    const bound = this.bound();
    for (const s of this.subscribers)
      if (s.sized !== bound) {
        s.sized = bound;
        s.channel.sendBuffer?.(bound);
      }
  }

  /**
   * Sends a batch to every subscriber, a slice of them per event-loop turn, so that a thousand
   * subscribers never hold the loop (the API keeps answering; the pipeline queues meanwhile).
   */
  write(batch: readonly MoatEvent[]): void | Promise<void> {
    if (this.subscribers.size === 0) return;
    // the bytes of the batch for one filter and framing, built once for all who share them
    const shared = new Map<string, { bytes: Buffer; count: number }>();
    const all = [...this.subscribers];
    const bound = this.bound();
    const slice = (from: number) => {
      for (const s of all.slice(from, from + SLICE))
        if (this.subscribers.has(s)) this.send(s, batch, shared, bound);
    };
    slice(0);
    if (all.length <= SLICE) return;
    return (async () => {
      for (let from = SLICE; from < all.length; from += SLICE) {
        await new Promise((resolve) => setImmediate(resolve));
        slice(from);
      }
    })();
  }

  private send(
    s: Subscriber,
    batch: readonly MoatEvent[],
    shared: Map<string, { bytes: Buffer; count: number }>,
    bound: number,
  ): void {
    let out = shared.get(s.key);
    if (!out) {
      out = framed(batch, s.filter, s.channel.framing);
      shared.set(s.key, out);
    }
    if (out.count === 0) return;
    if (s.channel.buffered() > bound) {
      s.lost += out.count;
      this.skipped += out.count;
      return;
    }
    if (s.lost > 0) {
      s.channel.lost?.(s.lost);
      s.lost = 0;
    }
    s.channel.write(out.bytes);
    this.sent += out.count;
  }

  /**
   * A notice goes to every subscriber, whatever its filter (SSE: `event: notice`; WebSocket: the
   * notice's JSON, whose type is not an event's), unless its connection is over its bound.
   */
  notice(n: Notice): void {
    const json = toJson(n);
    const frames: Record<Framing, Buffer> = {
      sse: Buffer.from(`event: notice\ndata: ${json}\n\n`),
      websocket: wsText(Buffer.from(json)),
    };
    const bound = this.bound();
    for (const s of this.subscribers)
      if (s.channel.buffered() <= bound) s.channel.write(frames[s.channel.framing]);
  }

  fanout(): { delivered: number; dropped: number } {
    return { delivered: this.sent, dropped: this.skipped };
  }

  /** True once the hub was put into the pipeline. */
  get registered(): boolean {
    return this.register === null;
  }

  close(): void {
    this.register = null;
    clearInterval(this.timer);
    for (const s of [...this.subscribers]) s.channel.end();
    this.subscribers.clear();
  }
}

function filterKey(filter: EventFilter, framing: Framing): string {
  return `${framing} ${JSON.stringify(filter, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`;
}
