// A fleet revision is recorded as handled only once its apply is over, against a real nats-server
// cluster: an apply that failed (the daemon's error, not the policy's) is taken up again and
// applied, one cut short by the daemon stopping is taken up at the next start, and a refused
// policy is reported as refused and not tried again, also after a restart; one a daemon ended
// during is refused at the next start.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PolicyFollower, type ApplyOutcome, type FleetStatus } from "../../src/fleet/index.ts";
import { readRevisionState, writeRevisionState } from "../../src/fleet/applied-revision.ts";
import { BUCKET, HOST, KEY, startPolicyBucket } from "../helpers/fleet-bucket.ts";

const POLICY = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\n";

test("a fleet revision is recorded once applied: a failed apply is retried, a refused one is not", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "retry", 15_000);
  const stateFile = join(dir, "state", "fleet-policy.json");
  /** Each apply's revision (from `who`), in order. */
  const calls: number[] = [];
  const failures = new Set<number>();
  let generation = 1;
  /** While set, an apply waits for it and ends as the daemon's does when it stops meanwhile. */
  let stopping: { called: () => void; release: Promise<void> } | null = null;
  const apply = async (
    text: string,
    who: string,
    admit: () => string | null,
  ): Promise<ApplyOutcome> => {
    const refusal = admit();
    if (refusal !== null) return { ok: false, generation, errors: [refusal] };
    const revision = Number(/revision (\d+)/.exec(who)?.[1]);
    calls.push(revision);
    if (text.includes("# datapath busy") && !failures.has(revision)) {
      failures.add(revision);
      throw new Error("datapath: the maps could not be swapped");
    }
    if (stopping) {
      const s = stopping;
      stopping = null;
      s.called();
      await s.release;
      return { ok: false, generation, errors: ["the datapath is gone"] };
    }
    if (text.includes("rules: 7"))
      return { ok: false, generation, errors: ["/etc/moat/policy.yaml:4:8 rules: not a list"] };
    return { ok: true, generation: ++generation, errors: [] };
  };
  const follow = () =>
    new PolicyFollower({
      connection: { url: cluster.urls[0] ?? "", host: HOST, seed: cluster.hosts.get(HOST)?.seed },
      host: HOST,
      bucket: BUCKET,
      stateFile,
      followed: () => ({}),
      apply,
      fileName: "/etc/moat/policy.yaml",
      log: () => {},
      retryMs: 200,
    });
  let follower = follow();
  t.after(() => follower.close());
  const count = (revision: number) => calls.filter((r) => r === revision).length;

  // the daemon fails the first apply: taken up again, applied, and only then recorded
  const busy = await kv.put(KEY, `${POLICY}# datapath busy\n`);
  const applied = await reportOn(busy);
  assert.equal(applied.result, "applied");
  assert.equal(applied.applied_revision, busy);
  assert.equal(count(busy), 2);
  // (the bucket's stream's creation time recorded beside, whatever it is)
  const state = readRevisionState(stateFile, BUCKET, KEY);
  assert.ok(state.stream);
  assert.deepEqual(state, {
    stream: state.stream,
    bucket: BUCKET,
    key: KEY,
    handled: busy,
    applied: busy,
    signed: 0,
    started: 0,
  });

  // a policy the daemon refuses: reported as refused, the revision handled, never tried again
  const bad = await kv.put(KEY, `${POLICY}rules: 7\n`);
  const refused = await reportOn(bad);
  assert.deepEqual(
    { ...refused, time: "" },
    {
      host: HOST,
      revision: bad,
      result: "refused",
      applied_revision: busy,
      generation,
      errors: [`${KEY}:4:8 rules: not a list`],
      time: "",
    },
  );
  await follower.close();
  follower = follow();
  assert.equal(follower.revisions.handled, bad);
  const next = await kv.put(KEY, POLICY);
  assert.equal((await reportOn(next)).result, "applied");
  assert.equal(count(bad), 1, "the refused revision was not taken up again after a restart");

  // the daemon stops during an apply: not recorded, taken up again at the next start
  let called!: () => void;
  let release!: () => void;
  const inApply = new Promise<void>((resolve) => (called = resolve));
  stopping = { called, release: new Promise<void>((resolve) => (release = resolve)) };
  const cut = await kv.put(KEY, POLICY.replace("prevent", "detect"));
  await inApply;
  const closed = follower.close();
  release();
  await closed;
  assert.equal(readRevisionState(stateFile, BUCKET, KEY).handled, next);
  assert.equal((await kv.get(`status.${HOST}`))?.json<FleetStatus>()?.revision, next);
  follower = follow();
  const again = await reportOn(cut);
  assert.equal(again.result, "applied");
  assert.equal(count(cut), 2);
  assert.equal(follower.revisions.applied, cut);

  // a daemon that ended during an apply (its state says the apply began): at the next start the
  // revision is refused, not applied again
  await follower.close();
  const fatal = await kv.put(KEY, `${POLICY}# ends the daemon\n`);
  writeRevisionState(stateFile, { ...readRevisionState(stateFile, BUCKET, KEY), started: fatal });
  follower = follow();
  const refusedAfter = await reportOn(fatal);
  assert.equal(refusedAfter.result, "refused");
  assert.match(refusedAfter.errors.join("\n"), /ended during this revision's apply/);
  assert.equal(count(fatal), 0);
  const after = readRevisionState(stateFile, BUCKET, KEY);
  assert.deepEqual(
    { ...after, bucket: "" },
    {
      bucket: "",
      key: KEY,
      handled: fatal,
      applied: cut,
      signed: 0,
      started: 0,
      stream: after.stream,
    },
  );
});
