// The audit log and the history on a disk that fills up (a small tmpfs, filled): the daemon logs
// that a sink's writes fail, with the reason, once; counts the events lost, not the batches; and
// says when the sink writes again and how many events were lost meanwhile.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { auditSink } from "../../src/observe/audit-sink.ts";
import { historySink, HISTORY_LINGER_MS } from "../../src/observe/history/sink.ts";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { startApi } from "../../src/api/server.ts";
import { formatStatus, type StatusJson } from "../../src/cli/commands/status.ts";
import { fakeEvent } from "../helpers/events.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";
import { smallDisk } from "../helpers/small-disk.ts";

/** A port scan's events: one kind each (a port apiece), so the audit log writes every one. */
const events = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) =>
    fakeEvent({
      connection: `${tag}-${i}`,
      rule: "scan",
      local: { ip: "10.0.0.1", port: 1000 + i },
      remote: { ip: `203.0.113.${tag.length}`, port: 40000 },
    }),
  );

test("sink writes failing on a full disk are logged with their reason once, lost events counted, recovery said", async (t) => {
  const { dir, closing } = smallDisk(t, "256k", "moat-sink-full");
  const logs: string[] = [];
  const log = (line: string) => void logs.push(line);
  const pipeline = new EventPipeline({ log });
  const audit = auditSink();
  audit.setPath(join(dir, "audit.log"));
  const history = new HistoryWorker(join(dir, "history.db"));
  await history.ready;
  pipeline.add(audit);
  pipeline.add(historySink(history, log), { lingerMs: HISTORY_LINGER_MS });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(testControl(pipeline), [{ listen: `unix:${socketPath}` }]);
  closing(() => pipeline.close());
  closing(() => api.close());

  for (const e of events(10, "before")) pipeline.push(e);
  await pipeline.flush();
  spawnSync("dd", ["if=/dev/zero", `of=${join(dir, "fill")}`, "bs=4k"]);

  // under the audit log's 1000 full lines a second, so none is summarised instead
  const batches = 3;
  const perBatch = 300;
  for (let b = 0; b < batches; b++) {
    for (const e of events(perBatch, `full${b}`)) pipeline.push(e);
    await pipeline.flush();
  }
  const lost = batches * perBatch;
  const failing = (sink: string) => logs.filter((l) => l.startsWith(`warning: sink ${sink}:`));
  assert.equal(
    failing("audit").length,
    1,
    `one line says the audit log fails: ${logs.join(" | ")}`,
  );
  assert.match(failing("audit")[0]!, /writes failing.*audit\.log: ENOSPC/);
  assert.equal(
    failing("history").length,
    1,
    `one line says the history fails: ${logs.join(" | ")}`,
  );
  assert.match(failing("history")[0]!, /writes failing.*history\.db: database or disk is full/);

  const status = JSON.parse((await http({ socketPath }, "GET", "/v1/status")).body) as StatusJson;
  const bySink = new Map(status.sinks.map((s) => [s.name, s]));
  for (const name of ["audit", "history"]) {
    assert.equal(bySink.get(name)?.lost, lost, `${name}: every event of a failed write is lost`);
    assert.equal(bySink.get(name)?.failed, batches, `${name}: failed writes`);
  }
  const sinksLine = formatStatus(status).find((l) => l.startsWith("sinks:"));
  assert.match(
    sinksLine ?? "",
    /audit 10 delivered, 0 dropped, 900 events lost \(3 failed writes\)/,
  );
  const metrics = (await http({ socketPath }, "GET", "/metrics")).body;
  assert.match(metrics, /^moat_sink_failed_events_total\{sink="history"\} 900$/m);
  assert.match(metrics, /^moat_sink_failed_batches_total\{sink="history"\} 3$/m);

  rmSync(join(dir, "fill"));
  for (const e of events(10, "after")) pipeline.push(e);
  await pipeline.flush();
  const again = (sink: string) => logs.filter((l) => l.startsWith(`sink ${sink}: writing again`));
  assert.deepEqual(again("audit"), [
    "sink audit: writing again; 900 events lost while its writes failed",
  ]);
  assert.deepEqual(again("history"), [
    "sink history: writing again; 900 events lost while its writes failed",
  ]);
  assert.equal((await history.query({ limit: 1000 })).events.length, 20, "kept before and after");
});

test("a sink whose failure changes its reason says so once per reason, not once per batch", async () => {
  const logs: string[] = [];
  const pipeline = new EventPipeline({ log: (line) => void logs.push(line) });
  const reasons = ["ENOSPC", "ENOSPC", "EIO", "EIO", "ENOSPC", "EIO"];
  let call = 0;
  pipeline.add({
    name: "file",
    write() {
      const reason = reasons[call++];
      if (reason) throw new Error(`file /x: ${reason}`);
    },
    close() {},
  });
  for (let i = 0; i <= reasons.length; i++) {
    pipeline.push(fakeEvent());
    pipeline.push(fakeEvent());
    await pipeline.flush();
  }
  assert.deepEqual(logs, [
    "warning: sink file: writes failing, events lost: file /x: ENOSPC",
    "warning: sink file: writes still failing, now: file /x: EIO (6 events lost so far)",
    "sink file: writing again; 12 events lost while its writes failed",
  ]);
  await pipeline.close();
});
