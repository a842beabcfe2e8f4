// The `otel` section as a sink: every event becomes a log record, feeds its connection's span
// and the connection counter; metrics are also exported on their own timer. write() flushes
// what it added, so a slow collector backs up the pipeline's queue for this sink (counted there)
// and an export failure rejects the batch (counted as failed) instead of vanishing. A reload that
// keeps the settings shares the providers (share()) instead of starting new ones.
import { ROOT_CONTEXT, trace } from "@opentelemetry/api";
import type { EventSink, SnapshotSource } from "../sink.ts";
import { createEventLogs } from "./logs.ts";
import { createEventMetrics } from "./metrics.ts";
import { moatResource } from "./resource.ts";
import { createConnectionTraces } from "./traces.ts";
import { EXPORT_CHUNK } from "./export-failures.ts";

export interface OtelOptions {
  /** OTLP/HTTP base URL; /v1/logs, /v1/traces and /v1/metrics are appended. */
  endpoint: string;
  snapshot: SnapshotSource;
  /** How often metrics are exported (default 15 s). */
  metricIntervalMs?: number;
  /** One export's time limit, retries included (default 10 s). */
  timeoutMs?: number;
  /** Spans of connections waiting for their close (default 10000). */
  maxOpenSpans?: number;
}

export interface OtelExport {
  sink: EventSink;
  /**
   * Lets go of this handle; the last one to go flushes and stops all three signals and ends
   * still-open spans (marked shutdown).
   */
  shutdown(): Promise<void>;
  /**
   * Another handle (with a sink of its own) on the same providers, so a reloaded policy with the
   * same settings keeps cumulative sums, their start time and open spans; undefined once stopped.
   */
  share(): OtelExport | undefined;
}

export function signalUrl(endpoint: string, signal: "logs" | "traces" | "metrics"): string {
  return `${endpoint.replace(/\/+$/, "")}/v1/${signal}`;
}

export function createOtelExport(o: OtelOptions): OtelExport {
  const shared = startExport(o);
  let handles = 0;
  const handle = (): OtelExport => {
    handles++;
    let released: Promise<void> | undefined;
    const shutdown = () => (released ??= --handles === 0 ? shared.shutdown() : Promise.resolve());
    const sink: EventSink = {
      name: "otel",
      write: (batch) => shared.write(batch),
      notice: (n) => shared.notice(n),
      close: shutdown,
    };
    return { sink, shutdown, share: () => (shared.stopped() ? undefined : handle()) };
  };
  return handle();
}

interface SharedExport extends Required<Pick<EventSink, "write" | "notice">> {
  shutdown(): Promise<void>;
  stopped(): boolean;
}

function startExport(o: OtelOptions): SharedExport {
  const resource = moatResource();
  const timeoutMs = o.timeoutMs ?? 10_000;
  const logs = createEventLogs(signalUrl(o.endpoint, "logs"), resource, timeoutMs);
  const traces = createConnectionTraces(
    signalUrl(o.endpoint, "traces"),
    resource,
    timeoutMs,
    o.maxOpenSpans ?? 10_000,
  );
  const metrics = createEventMetrics({
    url: signalUrl(o.endpoint, "metrics"),
    resource,
    snapshot: o.snapshot,
    intervalMs: o.metricIntervalMs ?? 15_000,
    timeoutMs,
    lost: () => ({ logs: logs.lost(), traces: traces.lost() }),
  });

  let stopped: Promise<void> | undefined;
  const shutdown = () =>
    (stopped ??= Promise.allSettled([logs.shutdown(), traces.shutdown(), metrics.shutdown()]).then(
      () => undefined,
    ));

  return {
    async write(batch) {
      const before = logs.lost() + traces.lost();
      let refused: PromiseRejectedResult | undefined;
      // a chunk at a time, flushed before the next: the processors' queues drop past their size
      for (let start = 0; start < batch.length; start += EXPORT_CHUNK) {
        for (const ev of batch.slice(start, start + EXPORT_CHUNK)) {
          const span = traces.spans.record(ev);
          logs.emit(ev, span ? trace.setSpan(ROOT_CONTEXT, span) : undefined);
          metrics.count(ev);
        }
        // a processor's flush may also reject with the exporter's error(s); the count decides
        const flushed = await Promise.allSettled([logs.flush(), traces.flush()]);
        refused ??= flushed.find((f) => f.status === "rejected");
      }
      const lost = logs.lost() + traces.lost() - before;
      if (lost > 0 || refused) {
        const why = logs.lastError() ?? traces.lastError() ?? refused?.reason;
        throw new Error(
          `otel: ${o.endpoint} did not take ${lost} log records/spans: ${describe(why)}`,
        );
      }
    },
    notice(n) {
      logs.notice(n);
      // exported with the next batch's flush, or by the processor's own timer
    },
    shutdown,
    stopped: () => stopped !== undefined,
  };
}

function describe(e: unknown): string {
  if (Array.isArray(e)) return e.map(describe).join("; ");
  if (e instanceof Error) return e.message;
  return String(e);
}
