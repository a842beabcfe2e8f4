// Live events by Server-Sent Events. Each subscriber is its own pipeline sink, so one that
// reads slowly fills its own queue and loses events there (counted as sink "api-subscriber").
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MoatEvent } from "../datapath/events.ts";
import { matchesFilter, type EventFilter } from "../observe/filter.ts";
import type { EventSink } from "../observe/sink.ts";
import type { ApiControl } from "./control.ts";
import { toJson } from "./json.ts";

const SUBSCRIBER_QUEUE = 8192;
const KEEPALIVE_MS = 15_000;

export function subscribe(
  req: IncomingMessage,
  res: ServerResponse,
  filter: EventFilter,
  control: ApiControl,
): void {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-store",
    connection: "keep-alive",
  });
  let closed = false;
  let wake: (() => void) | null = null;
  const sink: EventSink = {
    name: "api-subscriber",
    write(batch: readonly MoatEvent[]) {
      if (closed) return;
      let text = "";
      for (const event of batch)
        if (matchesFilter(filter, event))
          text += `event: ${event.type}\ndata: ${toJson(event)}\n\n`;
      if (!text || res.write(text)) return;
      // the client is behind: hold this sink (its queue fills and drops) until it drains
      return new Promise<void>((resolve) => {
        wake = resolve;
        res.once("drain", resolve);
      });
    },
    close() {
      closed = true;
      wake?.();
      res.end();
    },
  };
  control.addSink(sink, { capacity: SUBSCRIBER_QUEUE });
  const keepalive = setInterval(() => res.write(": keepalive\n\n"), KEEPALIVE_MS);
  keepalive.unref();
  // the comment tells the client the subscription is live
  res.write(": subscribed\n\n");
  const done = () => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    wake?.();
    void control.removeSink(sink);
  };
  req.once("close", done);
  res.once("close", done);
}
