// The review queue ("decide later"): unknown connections wait here for a person to allow or
// block them. An unknown connection is one no rule matched, judged by `defaults.<direction>` =
// block: reported `detected` in detect mode (always queued) or `blocked` in prevent mode (queued
// with `review.silent_block: true`). One entry per identity (executable path and user, when a
// socket hook saw them) and destination (direction, protocol, remote address, server port),
// counting its repeats; at most MAX_REVIEW entries, the connections beyond them counted as
// overflow. Nothing in the queue is ever decided by itself: an entry waits until a person answers
// it. The queue is kept in a file beside the decisions (review-file.ts), so it survives a restart.
import { createHash } from "node:crypto";
import type { MoatEvent } from "../datapath/index.ts";
import type { PolicyModel } from "../config/index.ts";
import type { ReviewEntry, ReviewView } from "../api/index.ts";
import { readReviewFile, writeReviewFile } from "./review-file.ts";

export const MAX_REVIEW = 1000;
/**
 * Names an entry keeps (the first is what a domain or wildcard answer names): a binding holds
 * up to 64, each up to 1,012 characters as moat writes odd octets, and a full queue of them
 * would make a file larger than the one read back at start (review-file.ts).
 */
export const MAX_ENTRY_NAMES = 8;
/** How soon after a change the queue is written (changes meanwhile go with it). */
const SAVE_DELAY_MS = 1000;

export interface ReviewQueueOptions {
  /** Where the queue is kept (beside decisions.json); null: in memory only. */
  path: string | null;
  log: (line: string) => void;
  saveDelayMs?: number;
}

/** Whether an event is an unknown connection the queue takes under `model`. */
export function queuesEvent(event: MoatEvent, model: PolicyModel): boolean {
  if (event.rule !== "default" || event.type !== event.verdict) return false;
  if (event.reason === "rejudged") return false;
  if (event.verdict === "detected") return true;
  return event.verdict === "blocked" && model.review?.silentBlock === true;
}

/** What one entry stands for: its identity and destination (its id is a hash of this). */
const keyOf = (e: Pick<ReviewEntry, "direction" | "protocol" | "remote" | "port" | "process">) =>
  [
    e.direction,
    e.protocol,
    e.remote.ip,
    e.port ?? "",
    e.process?.path ?? "",
    e.process?.user ?? "",
  ].join("|");

function serverPort(event: MoatEvent): number | undefined {
  if (event.protocol !== "tcp" && event.protocol !== "udp") return undefined;
  return event.direction === "ingress" ? event.local.port : event.remote.port;
}

export class ReviewQueue {
  private readonly entries = new Map<string, ReviewEntry>();
  private overflow = 0;
  private readonly options: ReviewQueueOptions;
  private timer: NodeJS.Timeout | null = null;
  private saveWarned = false;

  constructor(options: ReviewQueueOptions = { path: null, log: () => {} }) {
    this.options = options;
    this.load();
  }

  /** Queues an unknown connection (or counts a repeat of a queued one). */
  add(event: MoatEvent): ReviewEntry | null {
    const port = serverPort(event);
    const p = event.process;
    const key = keyOf({
      direction: event.direction,
      protocol: event.protocol,
      remote: event.remote,
      ...(port !== undefined ? { port } : {}),
      process: p ? { path: p.path, name: p.name, user: p.user } : null,
    });
    const id = createHash("sha256").update(key).digest("hex").slice(0, 10);
    const known = this.entries.get(id);
    this.changed();
    // ids are 40 bits: a connection someone made to share another entry's id is not that entry
    if (known && keyOf(known) !== key) {
      this.overflow++;
      return null;
    }
    if (known) {
      known.count++;
      known.last = event.time;
      if (event.remote.names?.length)
        known.remote.names = event.remote.names.slice(0, MAX_ENTRY_NAMES);
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
        ...(event.remote.names?.length
          ? { names: event.remote.names.slice(0, MAX_ENTRY_NAMES) }
          : {}),
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

  /** Takes an answered entry out (written at once: an answered entry never comes back). */
  remove(id: string): void {
    if (this.entries.delete(id)) this.save();
  }

  view(): ReviewView {
    return { entries: [...this.entries.values()], overflow: this.overflow, max: MAX_REVIEW };
  }

  /** Writes what is pending (the daemon stops). */
  close(): void {
    if (this.timer) this.save();
  }

  private load(): void {
    const { path, log } = this.options;
    if (path === null) return;
    let read: ReturnType<typeof readReviewFile>;
    try {
      read = readReviewFile(path);
    } catch (err) {
      log(
        `warning: the review queue in ${path} was not read (${(err as Error).message}): starting empty`,
      );
      return;
    }
    for (const note of read.notes) log(`warning: ${note}`);
    for (const e of read.entries.slice(0, MAX_REVIEW)) this.entries.set(e.id, e);
    this.overflow = read.overflow + Math.max(0, read.entries.length - MAX_REVIEW);
  }

  private changed(): void {
    if (this.options.path === null || this.timer) return;
    this.timer = setTimeout(() => this.save(), this.options.saveDelayMs ?? SAVE_DELAY_MS);
    this.timer.unref();
  }

  private save(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const { path, log } = this.options;
    if (path === null) return;
    try {
      writeReviewFile(path, this.view());
      this.saveWarned = false;
    } catch (err) {
      if (!this.saveWarned)
        log(`warning: the review queue was not saved: ${(err as Error).message}`);
      this.saveWarned = true;
    }
  }
}
