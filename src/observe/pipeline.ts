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
  /** Told when the batch being written at close() settles (its counts are final then). */
  private settled: (() => void) | undefined;
  private readonly failures: FailureLog;

  constructor(sink: EventSink, options: SinkOptions, log: (line: string) => void) {
    this.sink = sink;
    this.failures = new FailureLog(sink.name, log);
    this.capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.maxBatch = options.maxBatch ?? DEFAULT_BATCH;
    this.lingerMs = options.lingerMs ?? 0;
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
    if (!this.busy) {
      this.busy = true;
      // deliver after the current turn: events of one ring-buffer poll go out as one batch
      if (this.lingerMs > 0) setTimeout(() => void this.drain(), this.lingerMs);
      else setImmediate(() => void this.drain());
    }
  }

  private async drain(): Promise<void> {
    while (this.head < this.queue.length && !this.closed) {
      const batch = this.queue.slice(this.head, this.head + this.maxBatch);
      this.head += batch.length;
      if (this.head >= this.queue.length) {
        this.queue = [];
        this.head = 0;
      } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      // a batch being written still counts as queued: every event is delivered, dropped or queued
      this.writing = batch.length;
      try {
        await this.sink.write(batch);
        this.stats.delivered += batch.length;
        this.failures.wrote();
      } catch (err) {
        this.stats.failed++;
        this.stats.lost += batch.length;
        this.failures.failed(err instanceof Error ? err.message : String(err), batch.length);
      }
      this.writing = 0;
      this.stats.queued -= batch.length;
    }
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
