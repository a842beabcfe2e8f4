// failure.events_lost: events the kernel could not hand over (its ring buffer was full) are always
// counted and logged; with `notify` a notice with the count also goes through every sink: the
// daemon's output, the audit log, live API subscribers, the event history and OpenTelemetry
// logs. One notice per loss report at most (every 5 s), none when nothing was lost. The loss is
// made as the ring-buffer loss tests make it: the kernel's counter grows between two reports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import { formatDiagnostic } from "../../src/config/index.ts";
import { startEventPath } from "../../src/daemon/event-path.ts";
import { GenerationRecord } from "../../src/datapath/generations.ts";
import type { PacketCounts } from "../../src/observe/loss-report.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { auditSink } from "../../src/observe/audit-sink.ts";
import { stdoutSink } from "../../src/observe/stdout-sink.ts";
import { historySink } from "../../src/observe/history/sink.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { createOtelExport } from "../../src/observe/otel/sink.ts";
import { startApi } from "../../src/api/server.ts";
import { testControl } from "../helpers/api-control.ts";
import { startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { snapshot } from "../helpers/moat-events.ts";

const policy = (failure: string) =>
  `version: 1\nmode: detect\nattach: { interfaces: [lo] }\n${failure}`;

test("failure.events_lost is report (the default) or notify; moat check refuses anything else", () => {
  const choice = (text: string) => acceptPolicy(text, "/p.yaml").policy?.model.failure.eventsLost;
  assert.equal(choice(policy("")), "report");
  assert.equal(choice(policy("failure: { events_lost: report }\n")), "report");
  assert.equal(choice(policy("failure: { events_lost: notify }\n")), "notify");
  const bad = acceptPolicy(policy("failure: { events_lost: shout }\n"), "/p.yaml");
  assert.equal(bad.policy, undefined);
  assert.match(bad.diagnostics.map(formatDiagnostic).join("\n"), /failure\.events_lost/);
});

/** Reads an SSE stream until `until` matches what arrived. */
function sseUntil(socketPath: string, until: RegExp): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = new Promise<void>((resolve, reject) => {
    const req = request({ socketPath, path: "/v1/events/stream" }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        if (until.test(text)) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
  return { text: () => text, done };
}

for (const choice of ["notify", "report"] as const) {
  test(`events lost in the kernel with events_lost: ${choice}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `moat-lost-${process.pid}-`));
    const counts: PacketCounts = { eventLost: { packets: 7n }, ctFull: { packets: 0n } };
    const pipeline = new EventPipeline();
    const output: string[] = [];
    pipeline.add(stdoutSink((l) => output.push(l), false));
    const audit = auditSink();
    audit.setPath(join(dir, "audit.log"));
    pipeline.add(audit);
    // the history as the daemon runs it, in its worker thread; read back from the file after
    const historyPath = join(dir, "history.db");
    const historyWorker = new HistoryWorker(historyPath);
    await historyWorker.ready;
    const historyEvents = historySink(historyWorker, () => {});
    pipeline.add(historyEvents);
    const storedNotices = async () => {
      await pipeline.remove(historyEvents); // closes the worker
      const store = new HistoryStore(historyPath);
      try {
        return store.notices();
      } finally {
        store.close();
      }
    };
    const otlp = await startOtlpReceiver();
    const otel = createOtelExport({ endpoint: otlp.url, snapshot: () => snapshot() });
    pipeline.add(otel.sink);
    const socketPath = join(dir, "api.sock");
    const api = await startApi(testControl(pipeline), [{ listen: `unix:${socketPath}` }]);
    const logged: string[] = [];
    const path = startEventPath({
      source: {
        contents: new GenerationRecord(),
        subscribe: () => {},
        counters: () => structuredClone(counts),
      },
      push: (e) => pipeline.push(e),
      process: () => assert.fail("no events here"),
      interfaces: () => [],
      destroy: () => null,
      log: (l) => logged.push(l),
      eventsLost: () => choice,
      notice: (n) => pipeline.notice(n),
    });
    t.after(async () => {
      path.close();
      await api.close();
      await pipeline.close();
      await otlp.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const live = sseUntil(socketPath, /event: notice\n/);
    live.done.catch(() => {}); // with `report` the stream ends with the API
    // the subscriber is registered once its stream has started
    while (!live.text().includes(": subscribed")) await new Promise((r) => setTimeout(r, 10));

    path.reportLoss(); // nothing grew: nothing to say
    counts.eventLost = { packets: 130n };
    path.reportLoss();
    path.reportLoss(); // nothing more lost: no second notice
    await pipeline.flush();

    // always: counted and logged
    assert.deepEqual(logged, ["warning: 123 events lost (ring buffer full)"]);
    const line = /NOTICE 123 events lost in the kernel \(ring buffer full\)/;
    if (choice === "report") {
      assert.ok(!output.some((l) => line.test(l)), output.join("\n"));
      assert.doesNotMatch(readFileSync(join(dir, "audit.log"), "utf8"), line);
      assert.deepEqual(await storedNotices(), []);
      assert.equal(otlp.logs.length, 0);
      return;
    }
    assert.equal(output.filter((l) => line.test(l)).length, 1, output.join("\n"));
    const auditLines = readFileSync(join(dir, "audit.log"), "utf8").split("\n");
    assert.equal(auditLines.filter((l) => line.test(l)).length, 1, auditLines.join("\n"));
    const stored = await storedNotices();
    assert.equal(stored.length, 1);
    assert.equal(stored[0]?.type, "events_lost");
    assert.equal(stored[0]?.count, 123);
    await otlp.waitFor("the notice's log record", () => otlp.logs.length > 0);
    assert.equal(otlp.logs.length, 1);
    assert.equal(otlp.logs[0]?.eventName, "moat.notice.events_lost");
    assert.equal(otlp.logs[0]?.attributes["moat.events_lost"], 123);
    assert.match(String(otlp.logs[0]?.body), line);
    await live.done;
    const data = /event: notice\ndata: (.*)\n/.exec(live.text())?.[1];
    assert.ok(data, live.text());
    const notice = JSON.parse(data) as { type: string; count: number; time: string };
    assert.equal(notice.type, "events_lost");
    assert.equal(notice.count, 123);
    assert.ok(!Number.isNaN(Date.parse(notice.time)));
  });
}
