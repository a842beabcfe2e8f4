// The OTLP request messages a test receiver decodes, as protobufjs reflection: the subset of
// opentelemetry-proto (common, resource, logs, trace, metrics v1) moat's exports use, with the
// spec's field numbers. Unknown fields (events, links, histograms...) are skipped by the decoder.
import protobuf from "protobufjs";

const f = (type: string, id: number, rule?: "repeated") => ({
  type,
  id,
  ...(rule ? { rule } : {}),
});

const common = {
  AnyValue: {
    oneofs: {
      value: {
        oneof: [
          "stringValue",
          "boolValue",
          "intValue",
          "doubleValue",
          "arrayValue",
          "kvlistValue",
          "bytesValue",
        ],
      },
    },
    fields: {
      stringValue: f("string", 1),
      boolValue: f("bool", 2),
      intValue: f("int64", 3),
      doubleValue: f("double", 4),
      arrayValue: f("ArrayValue", 5),
      kvlistValue: f("KeyValueList", 6),
      bytesValue: f("bytes", 7),
    },
  },
  ArrayValue: { fields: { values: f("AnyValue", 1, "repeated") } },
  KeyValueList: { fields: { values: f("KeyValue", 1, "repeated") } },
  KeyValue: { fields: { key: f("string", 1), value: f("AnyValue", 2) } },
  InstrumentationScope: {
    fields: {
      name: f("string", 1),
      version: f("string", 2),
      attributes: f("KeyValue", 3, "repeated"),
    },
  },
  Resource: { fields: { attributes: f("KeyValue", 1, "repeated") } },
};

const logs = {
  ExportLogsServiceRequest: { fields: { resourceLogs: f("ResourceLogs", 1, "repeated") } },
  ResourceLogs: {
    fields: { resource: f("Resource", 1), scopeLogs: f("ScopeLogs", 2, "repeated") },
  },
  ScopeLogs: {
    fields: { scope: f("InstrumentationScope", 1), logRecords: f("LogRecord", 2, "repeated") },
  },
  LogRecord: {
    fields: {
      timeUnixNano: f("fixed64", 1),
      severityNumber: f("int32", 2),
      severityText: f("string", 3),
      body: f("AnyValue", 5),
      attributes: f("KeyValue", 6, "repeated"),
      traceId: f("bytes", 9),
      spanId: f("bytes", 10),
      observedTimeUnixNano: f("fixed64", 11),
      eventName: f("string", 12),
    },
  },
};

const traces = {
  ExportTraceServiceRequest: { fields: { resourceSpans: f("ResourceSpans", 1, "repeated") } },
  ResourceSpans: {
    fields: { resource: f("Resource", 1), scopeSpans: f("ScopeSpans", 2, "repeated") },
  },
  ScopeSpans: { fields: { scope: f("InstrumentationScope", 1), spans: f("Span", 2, "repeated") } },
  Span: {
    fields: {
      traceId: f("bytes", 1),
      spanId: f("bytes", 2),
      parentSpanId: f("bytes", 4),
      name: f("string", 5),
      kind: f("int32", 6),
      startTimeUnixNano: f("fixed64", 7),
      endTimeUnixNano: f("fixed64", 8),
      attributes: f("KeyValue", 9, "repeated"),
      events: f("SpanEvent", 11, "repeated"),
    },
  },
  SpanEvent: {
    fields: {
      timeUnixNano: f("fixed64", 1),
      name: f("string", 2),
      attributes: f("KeyValue", 3, "repeated"),
    },
  },
};

const metrics = {
  ExportMetricsServiceRequest: { fields: { resourceMetrics: f("ResourceMetrics", 1, "repeated") } },
  ResourceMetrics: {
    fields: { resource: f("Resource", 1), scopeMetrics: f("ScopeMetrics", 2, "repeated") },
  },
  ScopeMetrics: {
    fields: { scope: f("InstrumentationScope", 1), metrics: f("Metric", 2, "repeated") },
  },
  Metric: {
    fields: {
      name: f("string", 1),
      description: f("string", 2),
      unit: f("string", 3),
      gauge: f("Gauge", 5),
      sum: f("Sum", 7),
    },
  },
  Gauge: { fields: { dataPoints: f("NumberDataPoint", 1, "repeated") } },
  Sum: {
    fields: {
      dataPoints: f("NumberDataPoint", 1, "repeated"),
      aggregationTemporality: f("int32", 2),
      isMonotonic: f("bool", 3),
    },
  },
  NumberDataPoint: {
    fields: {
      startTimeUnixNano: f("fixed64", 2),
      timeUnixNano: f("fixed64", 3),
      asDouble: f("double", 4),
      asInt: f("sfixed64", 6),
      attributes: f("KeyValue", 7, "repeated"),
    },
  },
};

const root = protobuf.Root.fromJSON({
  nested: { otlp: { nested: { ...common, ...logs, ...traces, ...metrics } } },
});

export const ExportLogsServiceRequest = root.lookupType("otlp.ExportLogsServiceRequest");
export const ExportTraceServiceRequest = root.lookupType("otlp.ExportTraceServiceRequest");
export const ExportMetricsServiceRequest = root.lookupType("otlp.ExportMetricsServiceRequest");
