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

export class FailureCountingExporter<T> implements ItemExporter<T> {
  /** Items whose export failed, since start. */
  lost = 0;
  lastError: Error | undefined;
  private readonly inner: ItemExporter<T>;

  constructor(inner: ItemExporter<T>) {
    this.inner = inner;
  }

  export(items: T[], done: (result: { code: number; error?: Error }) => void): void {
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
