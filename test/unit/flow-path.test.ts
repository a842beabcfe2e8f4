// The daemon's flow path: close records and table scans become stored summaries once a window;
// its stop reads the table in the same turn (the datapath goes right after) and stores the last
// window; a close record of an allowed connection is never pushed as an event.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startFlowPath } from "../../src/daemon/flow-path.ts";
import type { ConntrackCounts, ConntrackEntry } from "../../src/datapath/conntrack.ts";
import type { FlowSummary } from "../../src/observe/flows/record.ts";
import { prometheusText } from "../../src/api/metrics.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { fakeEvent, fakeSnapshot } from "../helpers/events.ts";

function entry(id: string, bytes: number): ConntrackCounts {
  return {
    id,
    protocol: 6,
    tcpState: "established",
    flags: 0,
    createdNs: 0,
    lastNs: Number(process.hrtime.bigint()),
    packets: 3,
    bytes,
    decode: () =>
      ({
        id: BigInt(`0x${id}`),
        family: 4,
        protocol: 6,
        direction: "egress",
        local: { ip: "10.0.0.1", port: 40000 },
        remote: { ip: "192.0.2.7", port: 443 },
        verdict: "allowed",
        mode: "prevent",
        rule: 0,
        generation: 1,
        ifindex: 0,
        value: { owner: Buffer.alloc(48) },
      }) as unknown as ConntrackEntry,
  };
}

test("close records and the last scan at stop are stored as one window's summaries", async () => {
  const stored: FlowSummary[][] = [];
  let stopped = false;
  const table = [entry("a1", 5000)];
  const flows = startFlowPath({
    conntrack: function* () {
      if (stopped) throw new Error("the map is closed");
      yield table;
    },
    rule: () => "web",
    interfaceName: () => null,
    process: () => {
      throw new Error("no owner: never asked");
    },
    store: (s) => {
      stored.push(s);
      return Promise.resolve();
    },
    intervalMs: 3_600_000,
    log: (line) => assert.fail(line),
  });
  flows.closed(
    fakeEvent({
      type: "flow",
      verdict: "allowed",
      rule: "web",
      direction: "egress",
      reason: "rst",
      connection: "b2",
      local: { ip: "10.0.0.1", port: 40001 },
      remote: { ip: "192.0.2.7", port: 443 },
      stats: { packets: 2, bytes: 120, durationMs: 5 },
    }),
  );
  const closed = flows.close();
  stopped = true; // the datapath goes in the same turn
  await closed;
  assert.equal(stored.length, 1);
  const [summary] = stored[0]!;
  assert.equal(stored[0]!.length, 1, "one key: egress tcp 192.0.2.7:443 by web");
  assert.deepEqual(
    [summary?.connections, summary?.closed, summary?.bytes, summary?.connection.verdict],
    [2, 1, 5120, "allowed"],
  );
  assert.deepEqual(flows.counters().allowed, { records: 2, bytes: 5120 });
});

test("/metrics counts flow records and their bytes by verdict", () => {
  const snapshot = {
    ...fakeSnapshot(new EventPipeline()),
    flows: {
      allowed: { records: 12, bytes: 34_000 },
      blocked: { records: 1, bytes: 60 },
      detected: { records: 0, bytes: 0 },
    },
  };
  const text = prometheusText(snapshot, { requests: 0, unauthorized: 0 });
  assert.match(text, /^# TYPE moat_flow_records_total counter$/m);
  assert.match(text, /^moat_flow_records_total\{verdict="allowed"\} 12$/m);
  assert.match(text, /^moat_flow_bytes_total\{verdict="allowed"\} 34000$/m);
  assert.match(text, /^moat_flow_bytes_total\{verdict="blocked"\} 60$/m);
});
