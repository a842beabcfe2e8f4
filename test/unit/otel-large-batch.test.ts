// OpenTelemetry export of what the pipeline hands over at once: a full batch (4096 events) and the
// open spans ended at shutdown reach the collector whole (the SDK's processors drop past their
// queue size, silently); a log record's body is the audit line, control characters escaped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOtelExport } from "../../src/observe/otel/sink.ts";
import { formatEventLine } from "../../src/datapath/event.ts";
import { withReceiver } from "../helpers/otlp-receiver.ts";
import { moatEvent, snapshot } from "../helpers/moat-events.ts";

/** The pipeline's default batch (src/observe/pipeline.ts). */
const PIPELINE_BATCH = 4096;

test("a pipeline-size batch reaches the collector whole: one log record and one span per event", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot() });
    try {
      const batch = Array.from({ length: PIPELINE_BATCH }, (_, i) =>
        moatEvent({ type: "blocked", verdict: "blocked", connection: i.toString(16) }, i),
      );
      await otel.sink.write(batch);
      assert.equal(r.logs.length, PIPELINE_BATCH, "log records");
      assert.equal(r.spans.length, PIPELINE_BATCH, "zero-length spans of blocked connections");
      assert.equal(
        new Set(r.logs.map((l) => l.attributes["moat.connection.id"])).size,
        PIPELINE_BATCH,
      );
    } finally {
      await otel.shutdown();
    }
    const lost = r.points.filter((p) => p.metric === "moat.otel.lost");
    assert.equal(lost.findLast((p) => p.attributes["moat.otel.signal"] === "logs")?.value, 0);
    assert.equal(lost.findLast((p) => p.attributes["moat.otel.signal"] === "traces")?.value, 0);
  }));

test("shutdown ends thousands of open spans and every one reaches the collector", () =>
  withReceiver(async (r) => {
    const open = 5000;
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot() });
    // allowed TCP connections: their spans stay open until their close
    const events = Array.from({ length: open }, (_, i) =>
      moatEvent({ connection: i.toString(16) }, i),
    );
    await otel.sink.write(events.slice(0, PIPELINE_BATCH));
    await otel.sink.write(events.slice(PIPELINE_BATCH));
    assert.equal(r.spans.length, 0, "still open");
    await otel.shutdown();
    assert.equal(r.spans.length, open);
    assert.ok(r.spans.every((s) => s.attributes["moat.span.ended_by"] === "shutdown"));
  }));

test("a log record's body is the audit line: control characters and backslashes escaped", () =>
  withReceiver(async (r) => {
    const otel = createOtelExport({ endpoint: r.url, snapshot: () => snapshot() });
    try {
      const name = "evil\nFAKE\\n\u001b[2J\u202e";
      const ev = moatEvent({
        interface: "eth0\r",
        process: { pid: 7, name, path: `/tmp/${name}`, user: 0, cgroup: "/", container: null },
      });
      await otel.sink.write([ev]);
      const body = String(r.logs[0]?.body);
      assert.ok(!formatEventLine(ev).includes("\n"), "the line is made escaped");
      assert.ok(!["\n", "\r", "\u001b", "\u202e"].some((c) => body.includes(c)), body);
      assert.match(body, /on eth0\\r /);
      assert.match(body, /\(evil\\nFAKE\\\\n\\x1b\[2J\\u202e /);
      assert.equal(r.logs[0]?.attributes["process.executable.name"], name, "attributes as sent");
    } finally {
      await otel.shutdown();
    }
  }));
