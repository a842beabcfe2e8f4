// A policy bucket deleted and made again starts its revisions at 1: against a real nats-server
// cluster, the host's follower notices a revision of its key older than the one it handled, says
// the bucket was recreated, and takes up the new revisions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PolicyFollower, type ApplyOutcome } from "../../src/fleet/index.ts";
import { BUCKET, HOST, KEY, startPolicyBucket } from "../helpers/fleet-bucket.ts";
import { until } from "../helpers/until.ts";

const POLICY = "version: 1\nmode: detect\n";

test("after the bucket is recreated, its new revisions are taken up", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "recreated", 30_000);
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
  let last = 0;
  for (let i = 0; i < 3; i++) last = await kv.put(KEY, `${POLICY}# ${i}\n`);
  assert.equal((await reportOn(last)).result, "applied");

  const admin = await cluster.connectAdmin();
  t.after(() => admin.close());
  await (await admin.jetstreamManager()).streams.delete(`KV_${BUCKET}`);
  const again = await admin.jetstream().views.kv(BUCKET, { replicas: 3, history: 5 });
  const first = await again.put(KEY, `${POLICY}# new bucket\n`);
  assert.ok(first < last);
  const report = await until(
    `the report on the new bucket's revision ${first}`,
    async () => {
      const e = await again.get(`status.${HOST}`).catch(() => null);
      const s = e?.operation === "PUT" ? e.json<{ revision: number; result: string }>() : null;
      return s?.revision === first ? s : undefined;
    },
    30_000,
    100,
  );
  assert.equal(report.result, "applied");
  assert.equal(follower.revisions.applied, first);
  assert.ok(
    lines.some((l) => l.includes("recreated")),
    `the log says the bucket was recreated:\n${lines.join("\n")}`,
  );
});
