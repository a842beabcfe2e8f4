// A fleet revision the host could not go on following with (its state file in a directory others
// may write, its nkey seed file readable by others) is refused with the reason, against a real
// nats-server cluster: the running policy stays and the host goes on following.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parsePolicy } from "../../src/config/index.ts";
import { fleetFollow } from "../../src/daemon/fleet-follow.ts";
import type { RunningPolicy } from "../../src/daemon/policy-lifecycle.ts";
import type { ApplyOutcome } from "../../src/fleet/index.ts";
import { BUCKET, HOST, KEY, startPolicyBucket } from "../helpers/fleet-bucket.ts";

test("a revision whose fleet files fail their checks is refused, and following goes on", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "unfollowable", 20_000);
  const seedFile = join(dir, "fleet.nk");
  writeFileSync(seedFile, `${cluster.hosts.get(HOST)?.seed}\n`, { mode: 0o600 });
  const openSeed = join(dir, "open.nk");
  writeFileSync(openSeed, `${cluster.hosts.get(HOST)?.seed}\n`);
  chmodSync(openSeed, 0o644);
  const openDir = join(dir, "open");
  mkdirSync(openDir);
  chmodSync(openDir, 0o777);
  const policy = (mode: string, stateFile: string, seed = seedFile) =>
    `version: 1\nmode: ${mode}\nfleet:\n  url: "${cluster.urls[0]}"\n  host: ${HOST}\n` +
    `  nkey_seed_file: ${seed}\n  policy: { bucket: ${BUCKET}, state_file: ${stateFile} }\n`;
  const stateFile = join(dir, "state", "fleet-policy.json");
  const policyPath = join(dir, "policy.yaml");
  const first = policy("detect", stateFile);
  let running: RunningPolicy = { text: first, model: parsePolicy(first, policyPath), hash: "" };
  let generation = 1;
  const lines: string[] = [];
  // the lifecycle's apply as far as the follower sees it: admitted in its turn, then in force
  const apply = async (
    text: string,
    _who: string,
    admit: () => string | null,
  ): Promise<ApplyOutcome> => {
    const refusal = admit();
    if (refusal !== null)
      return { ok: false, generation, errors: [`${policyPath}:1:1: ${refusal}`] };
    running = { text, model: parsePolicy(text, policyPath), hash: "" };
    follow.update(running.model);
    return { ok: true, generation: ++generation, errors: [] };
  };
  const follow = fleetFollow({
    policyPath,
    apply,
    running: () => running,
    log: (line) => lines.push(line),
  });
  t.after(() => follow.close());
  follow.update(running.model);

  const openState = await kv.put(KEY, policy("prevent", join(openDir, "fleet-policy.json")));
  const refusedDir = await reportOn(openState);
  assert.equal(refusedDir.result, "refused", lines.join("\n"));
  assert.match(refusedDir.errors.join("\n"), /^policy\.web1:1:1: .*writable by group or others/);

  const openKey = await kv.put(KEY, policy("prevent", stateFile, openSeed));
  const refusedSeed = await reportOn(openKey);
  assert.equal(refusedSeed.result, "refused", lines.join("\n"));
  assert.match(refusedSeed.errors.join("\n"), /^policy\.web1:1:1: .*open\.nk/);
  assert.equal(running.text, first, "the running policy stays");

  const good = await kv.put(KEY, policy("prevent", stateFile));
  const applied = await reportOn(good);
  assert.equal(applied.result, "applied");
  assert.equal(running.model.mode, "prevent");
});
