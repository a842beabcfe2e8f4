// One OTLP log record per event: the audit line (escaped as in the audit log) as the body, the event as attributes, the
// severity by verdict, and the connection's span as context (so a backend links the two). A
// notice is a record of its own, `moat.notice.TYPE`: WARN (events lost in the kernel, a feed
// failing), INFO (a feed fetched again).
import { SeverityNumber, type Context } from "@opentelemetry/api";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import type { Resource } from "@opentelemetry/resources";
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";
import { formatEventLine, type MoatEvent } from "../../datapath/event.ts";
import { printable } from "../../config/printable.ts";
import { formatNoticeLine, type Notice } from "../notice.ts";
import { eventAttributes } from "./attributes.ts";
import {
  countingFlush,
  EXPORT_BATCH,
  FailureCountingExporter,
  processorTimeout,
  QUEUE_SIZE,
  TakenCounter,
} from "./export-failures.ts";

/** blocked > detected (would have been blocked) > allowed and closes. */
const SEVERITY: Record<MoatEvent["type"], [SeverityNumber, string]> = {
  blocked: [SeverityNumber.WARN2, "WARN2"],
  detected: [SeverityNumber.WARN, "WARN"],
  allowed: [SeverityNumber.INFO, "INFO"],
  closed: [SeverityNumber.INFO, "INFO"],
  dns: [SeverityNumber.INFO, "INFO"],
  flow: [SeverityNumber.INFO, "INFO"],
  anomaly: [SeverityNumber.WARN, "WARN"],
  exe_changed: [SeverityNumber.WARN, "WARN"],
};

export interface EventLogs {
  emit(ev: MoatEvent, context?: Context): void;
  notice(n: Notice): void;
  flush(): Promise<void>;
  /** Records the collector did not take. */
  lost(): number;
  lastError(): Error | undefined;
  shutdown(): Promise<void>;
}

export function createEventLogs(url: string, resource: Resource, timeoutMs: number): EventLogs {
  const exporter = new FailureCountingExporter<ReadableLogRecord>(
    new OTLPLogExporter({ url, timeoutMillis: timeoutMs }),
  );
  const taken = new TakenCounter();
  const provider = new LoggerProvider({
    resource,
    processors: [
      new BatchLogRecordProcessor({
        exporter,
        exportTimeoutMillis: processorTimeout(timeoutMs),
        maxQueueSize: QUEUE_SIZE,
        maxExportBatchSize: EXPORT_BATCH,
      }),
      taken,
    ],
  });
  const logger = provider.getLogger("moat.events");
  return {
    emit(ev, context) {
      const [severityNumber, severityText] = SEVERITY[ev.type];
      logger.emit({
        eventName: `moat.connection.${ev.type}`,
        timestamp: new Date(ev.time),
        severityNumber,
        severityText,
        // the audit log's line, escaped as there: a process name cannot forge a line
        body: formatEventLine(ev),
        attributes: eventAttributes(ev),
        ...(context ? { context } : {}),
      });
    },
    notice(n) {
      logger.emit({
        eventName: `moat.notice.${n.type}`,
        timestamp: new Date(n.time),
        ...(n.type === "feed_recovered"
          ? { severityNumber: SeverityNumber.INFO, severityText: "INFO" }
          : { severityNumber: SeverityNumber.WARN, severityText: "WARN" }),
        body: printable(formatNoticeLine(n)),
        attributes:
          n.type === "events_lost"
            ? { "moat.events_lost": n.count, "moat.interval_ms": n.intervalMs }
            : { "moat.feed.name": n.feed, "moat.feed.failures": n.failures },
      });
    },
    flush: countingFlush(() => provider.forceFlush(), taken, exporter),
    lost: () => exporter.lost,
    lastError: () => exporter.lastError,
    shutdown: () => provider.shutdown(),
  };
}
