// Counts what an OTLP exporter failed to deliver. The SDK's batch processors hand export
// failures to a global error handler and move on; moat reports them instead (the sink's write()
// rejects, the pipeline counts the failed batch, and `lost()` feeds the moat.otel.lost metric).

/** The shape the SDK's LogRecordExporter and SpanExporter share. */
interface ItemExporter<T> {
  export(items: T[], done: (result: { code: number; error?: Error }) => void): void;
  shutdown(): Promise<void>;
  forceFlush?(): Promise<void>;
}

const SUCCESS = 0; // ExportResultCode.SUCCESS

/**
 * The batch processor's limit for one export. The exporter retries a refused or reset
 * connection until its own limit; the processor waits a little longer so that the exporter's
 * failure, with its real cause and its item count, always arrives first.
 */
export function processorTimeout(exporterTimeoutMs: number): number {
  return exporterTimeoutMs + 1000;
}

/**
 * The batch processors' queue: what one flush may have to hold. write() hands the SDK at most
 * EXPORT_CHUNK events (each one log record and at most one span) before it flushes, so the queue
 * (which drops silently past its size) always has room for a chunk plus notices.
 */
export const QUEUE_SIZE = 8192;
export const EXPORT_CHUNK = 2048;
/** Records per export request. */
export const EXPORT_BATCH = 1024;

/**
 * A processor beside the batch processor that only counts what the SDK handed it (log records
 * emitted, spans ended): what the batch processor was given, to compare with what it exported.
 */
export class TakenCounter {
  taken = 0;
  onEmit(): void {
    this.taken++;
  }
  onStart(): void {}
  onEnd(): void {
    this.taken++;
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export class FailureCountingExporter<T> implements ItemExporter<T> {
  /** Items whose export failed or that the processor's full queue dropped, since start. */
  lost = 0;
  lastError: Error | undefined;
  private readonly inner: ItemExporter<T>;
  /** Items handed to export() since start. */
  private handed = 0;
  /** Items found dropped by the processor's queue (part of `lost`). */
  private unqueued = 0;

  constructor(inner: ItemExporter<T>) {
    this.inner = inner;
  }

  /**
   * After a flush that began when the processor had been given `takenBefore` items: those it
   * never handed to export() were dropped by its full queue. Counted as lost.
   */
  settle(takenBefore: number): void {
    const missing = takenBefore - this.handed - this.unqueued;
    if (missing <= 0) return;
    this.unqueued += missing;
    this.lost += missing;
    this.lastError = new Error(`${missing} dropped by the full export queue`);
  }

  export(items: T[], done: (result: { code: number; error?: Error }) => void): void {
    this.handed += items.length;
    this.inner.export(items, (result) => {
      if (result.code !== SUCCESS) {
        this.lost += items.length;
        this.lastError = result.error ?? new Error("export failed");
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * `flushAll` (the provider's forceFlush), then what the processor's queue dropped is counted. A
 * flush that overlapped another is not checked: the SDK returns from it at once, before its
 * items went out.
 */
export function countingFlush(
  flushAll: () => Promise<void>,
  taken: TakenCounter,
  exporter: { settle(takenBefore: number): void },
): () => Promise<void> {
  let active = 0;
  return async () => {
    const before = taken.taken;
    active++;
    try {
      await flushAll();
    } finally {
      if (--active === 0) exporter.settle(before);
    }
  };
}
