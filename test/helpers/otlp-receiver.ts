// A minimal OTLP/HTTP receiver for tests: accepts protobuf POSTs on /v1/logs, /v1/traces and
// /v1/metrics, decodes them with the OTLP message definitions and keeps what arrived, flattened
// to what an assertion needs.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import {
  ExportLogsServiceRequest,
  ExportMetricsServiceRequest,
  ExportTraceServiceRequest,
} from "./otlp-proto.ts";

export type AttrValue = string | number | boolean | null;
export type Attrs = Record<string, AttrValue>;

export interface LogSeen {
  timeNs: bigint;
  severityNumber: number;
  severityText: string;
  eventName: string;
  body: AttrValue;
  attributes: Attrs;
  traceId: string;
  spanId: string;
  resource: Attrs;
}

export interface SpanSeen {
  traceId: string;
  spanId: string;
  name: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Attrs;
  events: { name: string; attributes: Attrs }[];
  resource: Attrs;
}

export interface PointSeen {
  metric: string;
  kind: "sum" | "gauge";
  value: number;
  attributes: Attrs;
  resource: Attrs;
}

// decoded (toObject) shapes, as far as the receiver reads them
interface KV {
  key: string;
  value?: AnyV;
}
interface AnyV {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
}
type WithAttrs = { attributes?: KV[] };

const CONVERT = { longs: String, bytes: String, defaults: false, enums: Number } as const;

function value(v: AnyV | undefined): AttrValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return null;
}

export function attrs(list: KV[] | undefined): Attrs {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));
}

const hex = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString("hex");

export interface OtlpReceiver {
  url: string;
  logs: LogSeen[];
  spans: SpanSeen[];
  /** Every data point of every metrics request, in arrival order. */
  points: PointSeen[];
  requests: Record<string, number>;
  /** The next `n` requests to `path` are answered with `status` (to test failures). */
  failNext(n: number, status: number, path: string): void;
  waitFor(what: string, ok: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function body(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const r: Omit<OtlpReceiver, "url" | "close"> & {
    failing: number;
    failStatus: number;
    failPath: string;
  } = {
    logs: [],
    spans: [],
    points: [],
    requests: {},
    failing: 0,
    failStatus: 500,
    failPath: "",
    failNext(n, status, path) {
      r.failing = n;
      r.failStatus = status;
      r.failPath = path;
    },
    async waitFor(what, ok, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (!ok()) {
        if (Date.now() > until) throw new Error(`OTLP receiver: timed out waiting for ${what}`);
        await new Promise((res) => setTimeout(res, 20));
      }
    },
  };
  const decoders: Record<string, (buf: Buffer) => void> = {
    "/v1/logs": (buf) => {
      const m = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(buf), CONVERT);
      for (const rl of (m.resourceLogs ?? []) as {
        resource?: WithAttrs;
        scopeLogs?: { logRecords?: unknown[] }[];
      }[])
        for (const sl of rl.scopeLogs ?? [])
          for (const raw of sl.logRecords ?? []) {
            const l = raw as WithAttrs & {
              timeUnixNano?: string;
              severityNumber?: number;
              severityText?: string;
              eventName?: string;
              body?: AnyV;
              traceId?: string;
              spanId?: string;
            };
            r.logs.push({
              timeNs: BigInt(l.timeUnixNano ?? 0),
              severityNumber: l.severityNumber ?? 0,
              severityText: l.severityText ?? "",
              eventName: l.eventName ?? "",
              body: value(l.body),
              attributes: attrs(l.attributes),
              traceId: hex(l.traceId),
              spanId: hex(l.spanId),
              resource: attrs(rl.resource?.attributes),
            });
          }
    },
    "/v1/traces": (buf) => {
      const m = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(buf), CONVERT);
      for (const rs of (m.resourceSpans ?? []) as {
        resource?: WithAttrs;
        scopeSpans?: { spans?: unknown[] }[];
      }[])
        for (const ss of rs.scopeSpans ?? [])
          for (const raw of ss.spans ?? []) {
            const s = raw as WithAttrs & {
              traceId?: string;
              spanId?: string;
              name?: string;
              startTimeUnixNano?: string;
              endTimeUnixNano?: string;
              events?: (WithAttrs & { name?: string })[];
            };
            r.spans.push({
              traceId: hex(s.traceId),
              spanId: hex(s.spanId),
              name: s.name ?? "",
              startNs: BigInt(s.startTimeUnixNano ?? 0),
              endNs: BigInt(s.endTimeUnixNano ?? 0),
              attributes: attrs(s.attributes),
              events: (s.events ?? []).map((e) => ({
                name: e.name ?? "",
                attributes: attrs(e.attributes),
              })),
              resource: attrs(rs.resource?.attributes),
            });
          }
    },
    "/v1/metrics": (buf) => {
      const m = ExportMetricsServiceRequest.toObject(
        ExportMetricsServiceRequest.decode(buf),
        CONVERT,
      );
      type Point = WithAttrs & { asDouble?: number; asInt?: string };
      for (const rm of (m.resourceMetrics ?? []) as {
        resource?: WithAttrs;
        scopeMetrics?: {
          metrics?: {
            name: string;
            sum?: { dataPoints?: Point[] };
            gauge?: { dataPoints?: Point[] };
          }[];
        }[];
      }[])
        for (const sm of rm.scopeMetrics ?? [])
          for (const metric of sm.metrics ?? []) {
            const kind = metric.sum ? "sum" : "gauge";
            for (const p of (metric.sum ?? metric.gauge)?.dataPoints ?? [])
              r.points.push({
                metric: metric.name,
                kind,
                value: p.asDouble ?? Number(p.asInt ?? 0),
                attributes: attrs(p.attributes),
                resource: attrs(rm.resource?.attributes),
              });
          }
    },
  };
  const server = createServer((req, res) => {
    void body(req).then((buf) => {
      const path = req.url ?? "";
      r.requests[path] = (r.requests[path] ?? 0) + 1;
      const decode = decoders[path];
      if (req.method !== "POST" || !decode) return void res.writeHead(404).end();
      if (r.failing > 0 && path === r.failPath) {
        r.failing--;
        return void res.writeHead(r.failStatus).end();
      }
      try {
        decode(buf);
      } catch (e) {
        return void res.writeHead(400).end(String(e));
      }
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    ...r,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Runs `fn` with a receiver of its own, closed when `fn` ends, whatever happened. */
export async function withReceiver(fn: (r: OtlpReceiver) => Promise<void>): Promise<void> {
  const r = await startOtlpReceiver();
  try {
    await fn(r);
  } finally {
    await r.close();
  }
}
