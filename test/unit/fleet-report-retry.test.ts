// A host's report on a revision is written even when the server refuses it at first, against a
// real nats-server cluster: the follower tries again (the latest report only) until the server
// takes it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PolicyFollower, type ApplyOutcome } from "../../src/fleet/index.ts";
import { BUCKET, HOST, KEY, setMaxMessage, startPolicyBucket } from "../helpers/fleet-bucket.ts";
import { until } from "../helpers/until.ts";

const POLICY = "version: 1\nmode: detect\n";

test("a report the server refused is written once the server takes it", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "report-retry", 30_000);
  const admin = await cluster.connectAdmin();
  t.after(() => admin.close());
  const jsm = await admin.jetstreamManager();
  // the bucket takes the policy (24 bytes) but not a report (over 100)
  await setMaxMessage(jsm, 100);
  const lines: string[] = [];
  let generation = 1;
  const follower = new PolicyFollower({
    connection: { url: cluster.urls[0] ?? "", host: HOST, seed: cluster.hosts.get(HOST)?.seed },
    host: HOST,
    bucket: BUCKET,
    stateFile: join(dir, "state", "fleet-policy.json"),
    followed: () => ({}),
    apply: async (): Promise<ApplyOutcome> => ({ ok: true, generation: ++generation, errors: [] }),
    fileName: "/etc/moat/policy.yaml",
    log: (line) => lines.push(line),
    retryMs: 200,
  });
  t.after(() => follower.close());
  const revision = await kv.put(KEY, POLICY);
  await until(
    "the report refused",
    () => lines.find((l) => l.includes(`could not report revision ${revision}`)),
    20_000,
    50,
  );
  await setMaxMessage(jsm, -1);
  const report = await reportOn(revision);
  assert.equal(report.result, "applied");
  assert.equal(report.applied_revision, revision);
});
