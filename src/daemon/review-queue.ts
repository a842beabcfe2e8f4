// The review queue ("decide later"): unknown connections wait here for a person to allow or
// block them. An unknown connection is one no rule matched, judged by `defaults.<direction>` =
// block: reported `detected` in detect mode (always queued) or `blocked` in prevent mode (queued
// with `review.silent_block: true`). One entry per identity (executable path and user, when a
// socket hook saw them) and destination (direction, protocol, remote address, server port),
// counting its repeats; at most MAX_REVIEW entries, the connections beyond them counted as
// overflow. Nothing in the queue is ever decided by itself: an entry waits until a person answers
// it or the daemon stops.
import { createHash } from "node:crypto";
import type { MoatEvent } from "../datapath/index.ts";
import type { PolicyModel } from "../config/index.ts";
import type { ReviewEntry, ReviewView } from "../api/index.ts";

export const MAX_REVIEW = 1000;

/** Whether an event is an unknown connection the queue takes under `model`. */
export function queuesEvent(event: MoatEvent, model: PolicyModel): boolean {
  if (event.rule !== "default" || event.type !== event.verdict) return false;
  if (event.reason === "rejudged") return false;
  if (event.verdict === "detected") return true;
  return event.verdict === "blocked" && model.review?.silentBlock === true;
}

function serverPort(event: MoatEvent): number | undefined {
  if (event.protocol !== "tcp" && event.protocol !== "udp") return undefined;
  return event.direction === "ingress" ? event.local.port : event.remote.port;
}

export class ReviewQueue {
  private readonly entries = new Map<string, ReviewEntry>();
  private overflow = 0;

  /** Queues an unknown connection (or counts a repeat of a queued one). */
  add(event: MoatEvent): ReviewEntry | null {
    const port = serverPort(event);
    const p = event.process;
    const key = [
      event.direction,
      event.protocol,
      event.remote.ip,
      port ?? "",
      p?.path ?? "",
      p?.user ?? "",
    ].join("|");
    const id = createHash("sha256").update(key).digest("hex").slice(0, 10);
    const known = this.entries.get(id);
    if (known) {
      known.count++;
      known.last = event.time;
      if (event.remote.names?.length) known.remote.names = event.remote.names;
      return known;
    }
    if (this.entries.size >= MAX_REVIEW) {
      this.overflow++;
      return null;
    }
    const entry: ReviewEntry = {
      id,
      direction: event.direction,
      protocol: event.protocol,
      remote: {
        ip: event.remote.ip,
        ...(event.remote.names?.length ? { names: event.remote.names } : {}),
      },
      ...(port !== undefined ? { port } : {}),
      process: p ? { path: p.path, name: p.name, user: p.user } : null,
      verdict: event.verdict === "blocked" ? "blocked" : "detected",
      first: event.time,
      last: event.time,
      count: 1,
    };
    this.entries.set(id, entry);
    return entry;
  }

  get(id: string): ReviewEntry | undefined {
    return this.entries.get(id);
  }

  /** Takes an answered entry out. */
  remove(id: string): void {
    this.entries.delete(id);
  }

  view(): ReviewView {
    return { entries: [...this.entries.values()], overflow: this.overflow, max: MAX_REVIEW };
  }
}
