// A fleet revision that leaves the host unable to write its report (a policy that cuts it off
// from the fleet's servers) is reverted to the policy before it, against a real nats-server
// cluster: the host reports the revision refused once it reaches the servers again, and goes on
// following. The cut is the bucket refusing the host's reports while that revision runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PolicyFollower, type ApplyOutcome } from "../../src/fleet/index.ts";
import { BUCKET, HOST, KEY, setMaxMessage, startPolicyBucket } from "../helpers/fleet-bucket.ts";

const POLICY = "version: 1\nmode: detect\n";
const CUT = "version: 1\nmode: prevent\n# cut\n";

test("a revision whose report cannot be written is reverted to the policy before it", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "trial", 30_000);
  const admin = await cluster.connectAdmin();
  t.after(() => admin.close());
  const jsm = await admin.jetstreamManager();
  /** While the running policy cuts the host off, the bucket takes no report (over 100 bytes). */
  const reachable = (yes: boolean) => setMaxMessage(jsm, yes ? -1 : 100);
  let running = "";
  let generation = 1;
  const lines: string[] = [];
  const apply = async (
    text: string,
    _who: string,
    admit: () => string | null,
  ): Promise<ApplyOutcome> => {
    const refusal = admit();
    if (refusal !== null) return { ok: false, generation, errors: [refusal] };
    running = text;
    await reachable(text !== CUT);
    return { ok: true, generation: ++generation, errors: [] };
  };
  const follower = new PolicyFollower({
    connection: { url: cluster.urls[0] ?? "", host: HOST, seed: cluster.hosts.get(HOST)?.seed },
    host: HOST,
    bucket: BUCKET,
    stateFile: join(dir, "state", "fleet-policy.json"),
    followed: () => ({}),
    apply,
    runningText: () => running,
    trialMs: 3000,
    fileName: "/etc/moat/policy.yaml",
    log: (line) => lines.push(line),
    retryMs: 200,
  });
  t.after(() => follower.close());

  const good = await kv.put(KEY, POLICY);
  assert.equal((await reportOn(good)).result, "applied");
  const cut = await kv.put(KEY, CUT);
  const report = await reportOn(cut);
  assert.equal(report.result, "refused", lines.join("\n"));
  assert.equal(report.applied_revision, good);
  assert.match(report.errors.join("\n"), /^policy\.web1:1:1: reverted to the policy before it:/);
  assert.equal(running, POLICY, "the policy before it runs again");
  assert.equal(follower.revisions.applied, good);

  const next = await kv.put(KEY, `${POLICY}# next\n`);
  assert.equal((await reportOn(next)).result, "applied");
  assert.equal(running, `${POLICY}# next\n`);
});
