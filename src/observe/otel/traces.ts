// One span per judged connection: opened at its verdict event, ended at its `closed` event
// (matched by connection id). What will never see a close ends at once, as a zero-length span:
// untracked connections, blocked ones (dropped, so nothing follows), and protocols whose close
// the kernel does not report (only TCP's FIN/RST are). Open spans are bounded: past `maxOpen`
// the oldest is ended, marked evicted.
import { SpanKind, type Span, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import type { Resource } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";
import type { MoatEvent } from "../../datapath/event.ts";
import { closeAttributes, connectionAttributes } from "./attributes.ts";
import {
  countingFlush,
  EXPORT_BATCH,
  EXPORT_CHUNK,
  FailureCountingExporter,
  processorTimeout,
  QUEUE_SIZE,
  TakenCounter,
} from "./export-failures.ts";

/** Protocols whose close the kernel reports (docs/datapath.md, "Events and counters"). */
const CLOSE_REPORTED = new Set(["tcp"]);

/** How a span ended, as its moat.span.ended_by attribute says. */
export type EndedBy = "closed" | "verdict" | "rejudged" | "evicted" | "shutdown";

export class ConnectionSpans {
  private readonly tracer: Tracer;
  private readonly maxOpen: number;
  /** connection id -> span; Map order is opening order, so the first entry is the oldest. */
  private readonly open = new Map<string, Span>();

  constructor(tracer: Tracer, maxOpen: number) {
    this.tracer = tracer;
    this.maxOpen = maxOpen;
  }

  get openCount(): number {
    return this.open.size;
  }

  /** The span the event belongs to (for the log record's context), if any. */
  record(ev: MoatEvent): Span | undefined {
    const at = Date.parse(ev.time);
    const key = ev.connection;
    const current = key === null ? undefined : this.open.get(key);
    if (ev.type === "closed") return this.close(ev, at, current);
    if (current && key !== null) return this.rejudge(ev, at, key, current);

    const span = this.start(ev, at);
    if (key === null || ev.verdict === "blocked" || !CLOSE_REPORTED.has(ev.protocol)) {
      end(span, "verdict", at);
      return span;
    }
    this.open.set(key, span);
    for (const [oldest, old] of this.open) {
      if (this.open.size <= this.maxOpen) break;
      this.open.delete(oldest);
      end(old, "evicted", at);
    }
    return span;
  }

  /**
   * Ends up to `max` open spans, the oldest first (shutdown or a reload that replaces this
   * exporter); the number still open.
   */
  endSome(max: number): number {
    const now = Date.now();
    let n = 0;
    for (const [key, span] of this.open) {
      if (n++ >= max) break;
      this.open.delete(key);
      end(span, "shutdown", now);
    }
    return this.open.size;
  }

  private start(ev: MoatEvent, at: number): Span {
    return this.tracer.startSpan(`${ev.direction} ${ev.protocol}`, {
      kind: SpanKind.INTERNAL,
      startTime: at,
      attributes: connectionAttributes(ev),
      root: true,
    });
  }

  private close(ev: MoatEvent, at: number, current: Span | undefined): Span | undefined {
    if (current) {
      this.open.delete(ev.connection ?? "");
    } else {
      // its opening span is gone (evicted, or opened before this exporter started); a blocked
      // connection already had its zero-length span
      if (ev.verdict === "blocked") return undefined;
      current = this.start(ev, at - (ev.stats?.durationMs ?? 0));
      current.setAttribute("moat.span.opened_by", "closed");
    }
    current.setAttributes(closeAttributes(ev));
    end(current, "closed", at);
    return current;
  }

  /** A reload changed an open connection's verdict: note it; a block ends the span. */
  private rejudge(ev: MoatEvent, at: number, key: string, span: Span): Span {
    span.addEvent("moat.rejudged", { "moat.verdict": ev.verdict, "moat.rule": ev.rule }, at);
    span.setAttributes({ "moat.verdict": ev.verdict, "moat.rule": ev.rule });
    if (ev.verdict === "blocked") {
      this.open.delete(key);
      end(span, "rejudged", at);
    }
    return span;
  }
}

function end(span: Span, by: EndedBy, at: number): void {
  span.setAttribute("moat.span.ended_by", by);
  span.end(at);
}

export interface ConnectionTraces {
  spans: ConnectionSpans;
  flush(): Promise<void>;
  lost(): number;
  lastError(): Error | undefined;
  shutdown(): Promise<void>;
}

export function createConnectionTraces(
  url: string,
  resource: Resource,
  timeoutMs: number,
  maxOpen: number,
): ConnectionTraces {
  const exporter = new FailureCountingExporter<ReadableSpan>(
    new OTLPTraceExporter({ url, timeoutMillis: timeoutMs }),
  );
  const taken = new TakenCounter();
  const provider = new TracerProvider({
    resource,
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        exportTimeoutMillis: processorTimeout(timeoutMs),
        maxQueueSize: QUEUE_SIZE,
        maxExportBatchSize: EXPORT_BATCH,
      }),
      taken,
    ],
  });
  const spans = new ConnectionSpans(provider.getTracer("moat.connections"), maxOpen);
  const flush = countingFlush(() => provider.forceFlush(), taken, exporter);
  return {
    spans,
    flush,
    lost: () => exporter.lost,
    lastError: () => exporter.lastError,
    shutdown: async () => {
      // up to maxOpen spans end here: a chunk at a time, so the processor's queue holds them
      while (spans.endSome(EXPORT_CHUNK) > 0) await flush().catch(() => undefined);
      await flush().catch(() => undefined);
      await provider.shutdown();
    },
  };
}
