// Live events by Server-Sent Events: `event: TYPE` and `data: JSON` per event.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EventFilter } from "../observe/filter.ts";
import type { ApiControl } from "./control.ts";
import { toJson } from "./json.ts";
import { addSubscriber } from "./subscriber.ts";

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
  const done = addSubscriber(
    filter,
    {
      send: (events) =>
        res.write(events.map((e) => `event: ${e.type}\ndata: ${toJson(e)}\n\n`).join("")),
      keepalive: () => res.write(": keepalive\n\n"),
      onceDrain: (resolve) => res.once("drain", resolve),
      end: () => res.end(),
    },
    control,
  );
  // the comment tells the client the subscription is live
  res.write(": subscribed\n\n");
  req.once("close", done);
  res.once("close", done);
}
