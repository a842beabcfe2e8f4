// Live events by Server-Sent Events: `event: TYPE` and `data: JSON` per event; comments for
// keepalives and for events this subscriber lost by falling behind.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EventFilter } from "../observe/filter.ts";
import { sizeSendBuffer } from "./send-buffer.ts";
import type { SubscriberHub } from "./subscribers.ts";

export function subscribe(
  req: IncomingMessage,
  res: ServerResponse,
  filter: EventFilter,
  hub: SubscriberHub,
): void {
  const done = hub.add(filter, {
    framing: "sse",
    write: (bytes) => res.write(bytes),
    buffered: () => res.writableLength,
    keepalive: () => res.write(": keepalive\n\n"),
    lost: (count) => res.write(`: lost ${count} events (this subscriber fell behind)\n\n`),
    sendBuffer: (bytes) => sizeSendBuffer(req.socket, bytes),
    end: () => res.end(),
  });
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-store",
    connection: "keep-alive",
  });
  // the comment tells the client the subscription is live
  res.write(": subscribed\n\n");
  req.once("close", done);
  res.once("close", done);
}
