// Signed fleet policies against a real nats-server cluster: a follower whose policy names signers
// refuses an unsigned revision and one signed by another key (reported to its status key, the
// running policy untouched), applies what `moat fleet put --sign` wrote, and refuses an older
// signed revision put back, also after a restart (the signature's time is kept with the revision).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PolicyFollower, signPolicy } from "../../src/fleet/index.ts";
import { readRevisionState, writeRevisionState } from "../../src/fleet/applied-revision.ts";
import { newUser, seedFile } from "../helpers/nats-cluster.ts";
import { BUCKET, HOST, KEY, startPolicyBucket } from "../helpers/fleet-bucket.ts";
import { MOAT } from "../helpers/paths.ts";

const POLICY = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\n";

test("a follower that names signers applies only policies they signed, never an older one put back", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "signed", 20_000);
  const adminSeed = seedFile(dir, "admin.nk", cluster.admin.seed);
  const applied: string[] = [];
  const stateFile = join(dir, "state", "fleet-policy.json");
  /** What the running policy says of following (the daemon reads it in the apply's turn). */
  let followed: { signers?: readonly string[] } | null = { signers: [cluster.admin.publicKey] };
  /** An apply waits for its turn, as the daemon's changes do, one at a time. */
  let turn: Promise<void> = Promise.resolve();
  const follow = (signedFloor = 0) =>
    new PolicyFollower({
      connection: { url: cluster.urls[0] ?? "", host: HOST, seed: cluster.hosts.get(HOST)?.seed },
      host: HOST,
      bucket: BUCKET,
      stateFile,
      followed: () => followed,
      signedFloor,
      apply: async (text, _who, admit) => {
        await turn;
        const refusal = admit();
        if (refusal !== null)
          return {
            ok: false,
            generation: applied.length + 1,
            errors: [`/etc/moat/policy.yaml:1:1: ${refusal}`],
          };
        applied.push(text);
        return { ok: true, generation: applied.length + 1, errors: [] };
      },
      fileName: "/etc/moat/policy.yaml",
      log: () => {},
      retryMs: 200,
    });
  let follower = follow();
  t.after(() => follower.close());

  // unsigned, as anyone who can write the bucket could put it
  const unsigned = await kv.put(KEY, POLICY);
  assert.deepEqual(
    { ...(await reportOn(unsigned)), time: "" },
    {
      host: HOST,
      revision: unsigned,
      result: "refused",
      applied_revision: 0,
      generation: 1,
      errors: [`${KEY}:1:1: not signed: the first line is no '# moat-signature: ...'`],
      time: "",
    },
  );
  // signed by a key the policy does not name
  const stranger = newUser();
  const forged = await kv.put(
    KEY,
    signPolicy(POLICY, stranger.seed, { bucket: BUCKET, key: KEY }, Date.now()),
  );
  assert.match(
    (await reportOn(forged)).errors[0] ?? "",
    new RegExp(`signed by ${stranger.publicKey}, which fleet.policy.signers does not name`),
  );
  assert.deepEqual(applied, [], "nothing unsigned or forged was applied");

  // what the admin rolls out with moat fleet put --sign
  const file = join(dir, "policy.yaml");
  writeFileSync(file, POLICY);
  const put = (f: string) =>
    spawnSync(
      MOAT,
      [
        "fleet",
        "put",
        HOST,
        f,
        "--sign",
        adminSeed,
        "--server",
        cluster.urls[0] ?? "",
        "--nkey",
        adminSeed,
        "--json",
      ],
      {
        encoding: "utf8",
        timeout: 30_000,
      },
    );
  const first = put(file);
  assert.equal(first.status, 0, first.stderr);
  const firstRevision = (JSON.parse(first.stdout) as { revision: number }).revision;
  assert.equal((await reportOn(firstRevision)).result, "applied");
  const older = (await kv.get(KEY))?.string() ?? "";
  assert.match(older, /^# moat-signature: /);
  writeFileSync(file, POLICY.replace("prevent", "detect"));
  const second = put(file);
  assert.equal(second.status, 0, second.stderr);
  const secondRevision = (JSON.parse(second.stdout) as { revision: number }).revision;
  assert.equal((await reportOn(secondRevision)).result, "applied");
  assert.equal(applied.length, 2);

  // signed offline (moat fleet sign connects nowhere), then put as it is
  const offline = spawnSync(
    MOAT,
    ["fleet", "sign", HOST, file, "--sign", adminSeed, "--server", "nats://127.0.0.1:1"],
    { encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(offline.status, 0, offline.stderr);
  const signedFile = join(dir, "signed.yaml");
  writeFileSync(signedFile, offline.stdout);
  const third = spawnSync(
    MOAT,
    [
      "fleet",
      "put",
      HOST,
      signedFile,
      "--server",
      cluster.urls[0] ?? "",
      "--nkey",
      adminSeed,
      "--json",
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(third.status, 0, third.stderr);
  const thirdRevision = (JSON.parse(third.stdout) as { revision: number }).revision;
  assert.equal((await reportOn(thirdRevision)).result, "applied");
  assert.equal(applied.length, 3);

  // the older signed text put back: refused, now and after a restart
  const replay = await kv.put(KEY, older);
  assert.match((await reportOn(replay)).errors[0] ?? "", /an older policy put back/);
  await follower.close();
  follower = follow();
  const again = await kv.put(KEY, older);
  const report = await reportOn(again);
  assert.equal(report.result, "refused");
  assert.equal(report.applied_revision, thirdRevision);
  assert.equal(applied.length, 3, "no replay was applied");

  // the running policy's own signature is a floor when the state file is gone
  await follower.close();
  rmSync(stateFile);
  follower = follow(Date.now());
  const lost = await kv.put(KEY, older);
  assert.match((await reportOn(lost)).errors[0] ?? "", /an older policy put back/);

  // a revision waiting for its turn while a reload changes whose signatures count: judged by
  // the policy running when its turn comes
  let open!: () => void;
  turn = new Promise((resolve) => (open = resolve));
  const waiting = await kv.put(
    KEY,
    signPolicy(POLICY, cluster.admin.seed, { bucket: BUCKET, key: KEY }, Date.now()),
  );
  await new Promise((r) => setTimeout(r, 300)); // taken up, waiting
  followed = { signers: [stranger.publicKey] };
  open();
  assert.match(
    (await reportOn(waiting)).errors[0] ?? "",
    /which fleet.policy.signers does not name/,
  );
  // and one that comes once the running policy no longer follows this key
  followed = null;
  const unfollowed = await kv.put(KEY, POLICY);
  assert.equal(
    (await reportOn(unfollowed)).errors[0],
    `${KEY}:1:1: the running policy no longer follows ${BUCKET}/${KEY}`,
  );
  assert.equal(applied.length, 3);
});

test("the fleet state: a move to another bucket keeps the signature floor; a foreign file is neither trusted nor overwritten", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-fleet-state-"));
  try {
    const path = join(dir, "fleet-policy.json");
    writeRevisionState(path, { bucket: "a", key: KEY, handled: 7, applied: 7, signed: 5_000 });
    assert.deepEqual(readRevisionState(path, "b", KEY), {
      bucket: "b",
      key: KEY,
      handled: 0,
      applied: 0,
      signed: 5_000,
    });
    writeFileSync(path, "root:x:0:0:root:/root:/bin/bash\n");
    assert.throws(
      () => readRevisionState(path, "a", KEY),
      new RegExp(`^Error: ${path} is not moat's fleet state: not following`),
    );
    assert.equal(readRevisionState(join(dir, "none.json"), "a", KEY).handled, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
