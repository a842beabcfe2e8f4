// A live subscriber as its own pipeline sink, whatever carries it (SSE or WebSocket): one that
// reads slowly fills its own queue and loses events there (counted as sink "api-subscriber").
import type { MoatEvent } from "../datapath/event.ts";
import { matchesFilter, type EventFilter } from "../observe/filter.ts";
import type { EventSink } from "../observe/sink.ts";
import type { ApiControl } from "./control.ts";

const SUBSCRIBER_QUEUE = 8192;
const KEEPALIVE_MS = 15_000;

export interface Channel {
  /** Returns false when the peer is behind (wait for drain). */
  send(events: MoatEvent[]): boolean;
  keepalive(): void;
  onceDrain(resolve: () => void): void;
  end(): void;
}

/** Registers the subscriber; returns the function to call when the connection closes. */
export function addSubscriber(
  filter: EventFilter,
  channel: Channel,
  control: ApiControl,
): () => void {
  let closed = false;
  let wake: (() => void) | null = null;
  const sink: EventSink = {
    name: "api-subscriber",
    write(batch: readonly MoatEvent[]) {
      if (closed) return;
      const matching = batch.filter((e) => matchesFilter(filter, e));
      if (matching.length === 0 || channel.send(matching)) return;
      // the client is behind: hold this sink (its queue fills and drops) until it drains
      return new Promise<void>((resolve) => {
        wake = resolve;
        channel.onceDrain(resolve);
      });
    },
    close() {
      done();
      channel.end();
    },
  };
  control.addSink(sink, { capacity: SUBSCRIBER_QUEUE });
  const timer = setInterval(() => channel.keepalive(), KEEPALIVE_MS);
  timer.unref();
  function done(): void {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    wake?.();
    void control.removeSink(sink);
  }
  return done;
}
