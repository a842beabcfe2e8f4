// A policy bucket deleted and made again while the daemon is stopped, its key written as often
// as before: the new bucket's revision has the number the host handled last. Against a real
// nats-server cluster, the restarted follower tells the new bucket from the old by its stream,
// says the bucket was recreated, and applies and reports the new revision.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PolicyFollower, type ApplyOutcome } from "../../src/fleet/index.ts";
import { BUCKET, HOST, KEY, startPolicyBucket } from "../helpers/fleet-bucket.ts";
import { until } from "../helpers/until.ts";

const POLICY = "version: 1\nmode: detect\n";

test("a recreated bucket whose revision has the number handled before is taken up", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "same-revision", 30_000);
  const lines: string[] = [];
  const applied: string[] = [];
  let generation = 1;
  const follow = () =>
    new PolicyFollower({
      connection: { url: cluster.urls[0] ?? "", host: HOST, seed: cluster.hosts.get(HOST)?.seed },
      host: HOST,
      bucket: BUCKET,
      stateFile: join(dir, "state", "fleet-policy.json"),
      followed: () => ({}),
      apply: async (text, _who, admit): Promise<ApplyOutcome> => {
        const refusal = admit();
        if (refusal !== null) return { ok: false, generation, errors: [refusal] };
        applied.push(text);
        return { ok: true, generation: ++generation, errors: [] };
      },
      fileName: "/etc/moat/policy.yaml",
      log: (line) => lines.push(line),
      retryMs: 200,
    });
  const before = follow();
  const old = await kv.put(KEY, `${POLICY}# old bucket\n`);
  assert.equal((await reportOn(old)).result, "applied");
  await before.close();

  const admin = await cluster.connectAdmin();
  t.after(() => admin.close());
  await (await admin.jetstreamManager()).streams.delete(`KV_${BUCKET}`);
  const again = await admin.jetstream().views.kv(BUCKET, { replicas: 3, history: 5 });
  const first = await again.put(KEY, `${POLICY}# new bucket\n`);
  assert.equal(first, old, "the new bucket's revision has the old one's number");

  const after = follow();
  t.after(() => after.close());
  const report = await until(
    `the report on the new bucket's revision ${first}`,
    async () => {
      const e = await again.get(`status.${HOST}`).catch(() => null);
      const s = e?.operation === "PUT" ? e.json<{ revision: number; result: string }>() : null;
      return s?.revision === first ? s : undefined;
    },
    15_000,
    100,
  ).catch((err: Error) => assert.fail(`${err.message}; the follower's log:\n${lines.join("\n")}`));
  assert.equal(report.result, "applied");
  assert.equal(applied.at(-1), `${POLICY}# new bucket\n`);
  assert.ok(
    lines.some((l) => l.includes("the bucket was recreated")),
    `the log says the bucket was recreated:\n${lines.join("\n")}`,
  );
});
