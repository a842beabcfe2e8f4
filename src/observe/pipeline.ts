// One stream of decoded events fanned out to every sink. Each sink has its own bounded queue and
// its own delivery loop: push() only appends to queues (never waits on a sink), so a slow or dead
// sink fills its own queue and loses events there, counted, while the others keep up.
import type { MoatEvent } from "../datapath/event.ts";
import type { EventSink, SinkStats } from "./sink.ts";
import type { Notice } from "./notice.ts";

export interface SinkOptions {
  /** Events held for this sink before new ones are dropped (default 65536). */
  capacity?: number;
  /** Most events handed to one write() (default 4096). */
  maxBatch?: number;
  /**
   * How long the first event waits for others to share its write (default 0: the events of the
   * current turn only). A sink with a fixed cost per write (a message to another thread, a
   * transaction) takes fewer, larger batches.
   */
  lingerMs?: number;
}

const DEFAULT_CAPACITY = 65_536;
const DEFAULT_BATCH = 4096;
/** Reasons one spell of failures logs at most: a reason that keeps changing floods no log. */
const REASONS_LOGGED = 8;

/**
 * What the daemon's log says of a sink whose writes fail: when they start failing (the reason),
 * when the reason changes, and when a write succeeds again with the events lost meanwhile. Each
 * failed write is counted in the stats, never logged on its own.
 */
class FailureLog {
  private failing = false;
  private lost = 0;
  private reason = "";
  private readonly reasons = new Set<string>();
  private readonly name: string;
  private readonly log: (line: string) => void;

  constructor(name: string, log: (line: string) => void) {
    this.name = name;
    this.log = log;
  }

  failed(reason: string, events: number): void {
    this.lost += events;
    if (!this.failing) {
      this.failing = true;
      this.reason = reason;
      this.reasons.add(reason);
      this.log(`warning: sink ${this.name}: writes failing, events lost: ${reason}`);
      return;
    }
    if (reason === this.reason) return;
    this.reason = reason;
    if (this.reasons.has(reason) || this.reasons.size >= REASONS_LOGGED) return;
    this.reasons.add(reason);
    this.log(
      `warning: sink ${this.name}: writes still failing, now: ${reason} (${this.lost} events lost so far)`,
    );
  }

  wrote(): void {
    if (!this.failing) return;
    this.log(`sink ${this.name}: writing again; ${this.lost} events lost while its writes failed`);
    this.failing = false;
    this.lost = 0;
    this.reasons.clear();
  }
}

class SinkQueue {
  readonly sink: EventSink;
  readonly stats: SinkStats;
  private readonly capacity: number;
  private readonly maxBatch: number;
  private readonly lingerMs: number;
  private queue: MoatEvent[] = [];
  private head = 0;
  private busy = false;
  private closed = false;
  /** Events of the batch being written. */
  private writing = 0;
  private idle: (() => void)[] = [];
  /** Batches whose write() may be unsettled at once (the sink's batchesInFlight). */
  private readonly window: number;
  /** Batches handed over whose write() has not settled (window > 1). */
  private inFlight = 0;
  /** A hand-over is scheduled (window > 1). */
  private scheduled = false;
  /** Set while pump() hands batches over: a write that fails at once is settled by it. */
  private pumping = false;
  /** Told when the batch being written at close() settles (its counts are final then). */
  private settled: (() => void) | undefined;
  private readonly failures: FailureLog;

  constructor(sink: EventSink, options: SinkOptions, log: (line: string) => void) {
    this.sink = sink;
    this.failures = new FailureLog(sink.name, log);
    this.capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.maxBatch = options.maxBatch ?? DEFAULT_BATCH;
    this.lingerMs = options.lingerMs ?? 0;
    this.window = Math.max(1, Math.floor(sink.batchesInFlight ?? 1));
    this.stats = { name: sink.name, delivered: 0, dropped: 0, failed: 0, lost: 0, queued: 0 };
  }

  /** The stats as reported: a fan-out sink counts what reached its receivers. */
  report(): SinkStats {
    // writes that failed outside a batch (a summary line written by a timer) count as failed
    const stats = { ...this.stats, failed: this.stats.failed + (this.sink.failures?.() ?? 0) };
    const f = this.sink.fanout?.();
    if (!f) return stats;
    return { ...stats, delivered: f.delivered, dropped: stats.dropped + f.dropped };
  }

  push(event: MoatEvent): void {
    if (this.closed) return;
    if (this.stats.queued >= this.capacity) {
      this.stats.dropped++;
      return;
    }
    this.queue.push(event);
    this.stats.queued++;
    if (this.window > 1) {
      if (!this.scheduled && this.inFlight < this.window) this.schedule();
      return;
    }
    if (!this.busy) {
      this.busy = true;
      // deliver after the current turn: events of one ring-buffer poll go out as one batch
      if (this.lingerMs > 0) setTimeout(() => void this.drain(), this.lingerMs);
      else setImmediate(() => void this.drain());
    }
  }

  /** The next batch of the queue (up to maxBatch events), taken off it. */
  private take(): MoatEvent[] {
    const batch = this.queue.slice(this.head, this.head + this.maxBatch);
    this.head += batch.length;
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  /** A settled write's events: delivered, or lost with the batch counted as failed. */
  private count(events: number, failed: boolean, err?: unknown): void {
    if (!failed) {
      this.stats.delivered += events;
      this.failures.wrote();
    } else {
      this.stats.failed++;
      this.stats.lost += events;
      this.failures.failed(err instanceof Error ? err.message : String(err), events);
    }
    this.stats.queued -= events;
  }

  private async drain(): Promise<void> {
    while (this.head < this.queue.length && !this.closed) {
      const batch = this.take();
      // a batch being written still counts as queued: every event is delivered, dropped or queued
      this.writing = batch.length;
      let failed = false;
      let err: unknown;
      try {
        await this.sink.write(batch);
      } catch (e) {
        failed = true;
        err = e;
      }
      this.writing = 0;
      this.count(batch.length, failed, err);
    }
    this.busy = false;
    for (const resolve of this.idle.splice(0)) resolve();
    this.settled?.();
  }

  // ---- a sink with batches in flight (window > 1) ----

  /** The next hand-over: at once for a full batch, else after lingerMs (or this turn). */
  private schedule(): void {
    this.busy = true;
    this.scheduled = true;
    const go = () => this.pump();
    if (this.lingerMs > 0 && this.queue.length - this.head < this.maxBatch)
      setTimeout(go, this.lingerMs);
    else setImmediate(go);
  }

  /** Hands over what is queued: a batch, and more while they are full and places are free. */
  private pump(): void {
    this.scheduled = false;
    this.pumping = true;
    let first = true;
    while (!this.closed && this.inFlight < this.window && this.head < this.queue.length) {
      // past the first, a partial batch gathers more events for the next hand-over
      if (!first && this.queue.length - this.head < this.maxBatch) break;
      first = false;
      this.send(this.take());
    }
    this.pumping = false;
    this.next();
  }

  private send(batch: MoatEvent[]): void {
    const events = batch.length;
    this.inFlight++;
    this.writing += events;
    let written: void | Promise<void>;
    try {
      written = this.sink.write(batch);
    } catch (err) {
      this.settle(events, true, err);
      return;
    }
    Promise.resolve(written).then(
      () => this.settle(events, false),
      (err: unknown) => this.settle(events, true, err),
    );
  }

  private settle(events: number, failed: boolean, err?: unknown): void {
    this.inFlight--;
    this.writing -= events;
    this.count(events, failed, err);
    if (!this.pumping) this.next();
  }

  /** After a hand-over or a settled write: another hand-over, or idle once nothing is left. */
  private next(): void {
    if (this.scheduled) return;
    if (!this.closed && this.head < this.queue.length) {
      // else a write that settles calls this again
      if (this.inFlight < this.window) this.schedule();
      return;
    }
    if (this.inFlight > 0) return;
    this.busy = false;
    for (const resolve of this.idle.splice(0)) resolve();
    this.settled?.();
  }

  /** Resolves when everything queued so far was handed to the sink (or the sink was closed). */
  flushed(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /**
   * Stops delivery: what was still queued is dropped (counted); a batch being written stays
   * queued until its write() settles, then counts as delivered or failed. `settled` is called
   * then, or at once when none is being written.
   */
  close(settled: () => void): void {
    this.closed = true;
    this.stats.dropped += this.stats.queued - this.writing;
    this.stats.queued = this.writing;
    this.queue = [];
    this.head = 0;
    for (const resolve of this.idle.splice(0)) resolve();
    if (this.writing > 0) this.settled = settled;
    else settled();
  }
}

export interface PipelineOptions {
  /** The daemon's log: sinks whose writes fail, and recover (default: nowhere). */
  log?: (line: string) => void;
}

export class EventPipeline {
  private sinks: SinkQueue[] = [];
  private readonly log: (line: string) => void;
  /** Stats of sinks already removed, so drops stay visible after a reload replaced a sink. */
  private readonly retired = new Map<string, SinkStats>();
  /** Removed sinks whose last write() has not settled yet: reported live until it does. */
  private readonly settling = new Set<SinkQueue>();
  /** Events by type (flow summaries go to the history, never through the pipeline). */
  readonly events: Record<Exclude<MoatEvent["type"], "flow">, number> = {
    allowed: 0,
    blocked: 0,
    detected: 0,
    closed: 0,
    dns: 0,
    anomaly: 0,
    exe_changed: 0,
  };

  constructor(options: PipelineOptions = {}) {
    this.log = options.log ?? (() => {});
  }

  add(sink: EventSink, options: SinkOptions = {}): void {
    this.sinks.push(new SinkQueue(sink, options, this.log));
  }

  /** Takes `sink` out, lets it finish the batch it is writing (up to `graceMs`), closes it. */
  async remove(sink: EventSink, graceMs = 1000): Promise<void> {
    const index = this.sinks.findIndex((q) => q.sink === sink);
    if (index < 0) return;
    const [q] = this.sinks.splice(index, 1);
    if (!q) return;
    await Promise.race([q.flushed(), delay(graceMs)]);
    this.settling.add(q);
    q.close(() => {
      this.settling.delete(q);
      this.retire(q.report());
    });
    try {
      await sink.close();
    } catch {
      // a sink that fails to close has nothing more to give
    }
  }

  push(event: MoatEvent): void {
    if (event.type !== "flow") this.events[event.type]++;
    for (const q of this.sinks) q.push(event);
  }

  /** Tells every sink that takes notices; one failing sink does not keep it from the others. */
  notice(notice: Notice): void {
    for (const q of this.sinks) {
      try {
        q.sink.notice?.(notice);
      } catch {
        q.stats.failed++;
      }
    }
  }

  /** Live and removed sinks' accounting; a name seen twice is summed. */
  stats(): SinkStats[] {
    const byName = new Map<string, SinkStats>();
    for (const s of this.retired.values()) byName.set(s.name, { ...s });
    for (const q of [...this.settling, ...this.sinks]) {
      const stats = q.report();
      const prev = byName.get(stats.name);
      byName.set(stats.name, prev ? sum(prev, stats) : stats);
    }
    return [...byName.values()];
  }

  /** Resolves when every sink was handed what is queued now (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.all(this.sinks.map((q) => q.flushed()));
  }

  /** Delivers what is queued (each sink gets `graceMs`), then closes every sink. */
  async close(graceMs = 1000): Promise<void> {
    for (const q of [...this.sinks]) await this.remove(q.sink, graceMs);
  }

  private retire(stats: SinkStats): void {
    const prev = this.retired.get(stats.name);
    this.retired.set(stats.name, prev ? sum(prev, stats) : stats);
  }
}

function sum(a: SinkStats, b: SinkStats): SinkStats {
  return {
    name: a.name,
    delivered: a.delivered + b.delivered,
    dropped: a.dropped + b.dropped,
    failed: a.failed + b.failed,
    lost: a.lost + b.lost,
    queued: a.queued + b.queued,
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
