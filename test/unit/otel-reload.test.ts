// OpenTelemetry across policy reloads, through the daemon's plumbing and a real OTLP receiver: a
// reload that keeps the `otel` section keeps the exporter, so cumulative sums keep counting and a
// connection opened before it still gets its span ended by its close; a reload that changes the
// endpoint moves the export there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { auditSink, EventPipeline, loadPolicySinks } from "../../src/observe/index.ts";
import { policyPlumbing } from "../../src/daemon/policy-plumbing.ts";
import { startOtlpReceiver, type OtlpReceiver } from "../helpers/otlp-receiver.ts";
import { closeOf, moatEvent, snapshot } from "../helpers/moat-events.ts";

const policy = (endpoint: string) =>
  parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
otel: { endpoint: ${endpoint} }
rules: []
`,
    "policy.yaml",
  );

/** The values of `moat.connections` the receiver got, in arrival order. */
const connections = (r: OtlpReceiver) =>
  r.points.filter((p) => p.metric === "moat.connections").map((p) => p.value);

async function reloadLab(t: { after: (fn: () => Promise<void>) => void }) {
  const first = await startOtlpReceiver();
  const second = await startOtlpReceiver();
  const pipeline = new EventPipeline();
  const audit = auditSink();
  const initial = policy(first.url);
  await loadPolicySinks(initial);
  const plumbing = policyPlumbing(initial, {
    policyPath: "/etc/moat/policy.yaml",
    pipeline,
    audit,
    snapshot: () => snapshot(),
    watch: { set: () => {} },
    log: () => {},
  });
  t.after(async () => {
    await pipeline.close();
    await plumbing.close();
    audit.close();
    await Promise.all([first.close(), second.close()]);
  });
  const reload = (endpoint: string) => plumbing.prepare(policy(endpoint), initial).commit();
  return { first, second, pipeline, plumbing, reload };
}

test("a reload that keeps the otel section keeps counting and keeps open spans", async (t) => {
  const lab = await reloadLab(t);
  const opened = moatEvent({ connection: "kept" });
  lab.pipeline.push(opened);
  await lab.first.waitFor("the first log record", () => lab.first.logs.length === 1);

  lab.reload(lab.first.url);
  lab.pipeline.push(moatEvent({ connection: "after" }));
  lab.pipeline.push(closeOf(opened, 5_000));
  await lab.first.waitFor("all log records", () => lab.first.logs.length === 3);
  await lab.pipeline.close();
  await lab.plumbing.close();

  const counted = connections(lab.first);
  assert.equal(counted.at(-1), 2, `moat.connections as exported: ${counted.join(", ")}`);
  assert.deepEqual(
    counted.filter((v, i) => i > 0 && v < (counted[i - 1] ?? 0)),
    [],
    "a cumulative sum never goes down",
  );
  assert.deepEqual(
    lab.first.spans
      .filter((s) => s.attributes["moat.connection.id"] === "kept")
      .map((s) => s.attributes["moat.span.ended_by"]),
    ["closed"],
    "the connection's one span ends at its close",
  );
});

test("a reload that changes the endpoint exports there from then on", async (t) => {
  const lab = await reloadLab(t);
  lab.pipeline.push(moatEvent({ connection: "before" }));
  await lab.first.waitFor("the first log record", () => lab.first.logs.length === 1);

  lab.reload(lab.second.url);
  await lab.first.waitFor(
    "the old exporter's last metrics",
    () => connections(lab.first).length > 0,
  );
  lab.pipeline.push(moatEvent({ connection: "after" }));
  await lab.second.waitFor("the log record after", () => lab.second.logs.length === 1);
  await lab.pipeline.close();

  assert.deepEqual(connections(lab.first), [1]);
  assert.deepEqual(connections(lab.second), [1]);
  assert.deepEqual(
    lab.second.logs.map((l) => l.attributes["moat.connection.id"]),
    ["after"],
  );
});
