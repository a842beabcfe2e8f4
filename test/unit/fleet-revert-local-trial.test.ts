// A fleet revision that cuts the host off arrives while a local policy is on trial (`moat policy
// apply --confirm`): with the daemon's real policy lifecycle (checker, compiler, policy file) and
// a real nats-server cluster, the revert puts back the confirmed policy the trial would have
// gone back to, not the unconfirmed trial, and the policy file keeps the confirmed one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PolicyLifecycle, readPolicyFile } from "../../src/daemon/policy-lifecycle.ts";
import { fleetFollow } from "../../src/daemon/fleet-follow.ts";
import { stopAcceptWorker } from "../../src/host/accept-off-thread.ts";
import { BUCKET, HOST, KEY, setMaxMessage, startPolicyBucket } from "../helpers/fleet-bucket.ts";
import { seedFile } from "../helpers/nats-cluster.ts";

test("a revert after a local trial puts back the confirmed policy, not the trial", async (t) => {
  const { dir, cluster, kv, reportOn } = await startPolicyBucket(t, "local-trial", 120_000);
  const admin = await cluster.connectAdmin();
  t.after(() => admin.close());
  const jsm = await admin.jetstreamManager();
  /** While a policy with the rule `cut` runs, the bucket takes no report (over 100 bytes). */
  const reachable = (yes: boolean) => setMaxMessage(jsm, yes ? -1 : 100);

  const seed = seedFile(dir, "web1.nk", cluster.hosts.get(HOST)?.seed ?? "");
  mkdirSync(join(dir, "etc"));
  const path = join(dir, "etc", "policy.yaml");
  const policy = (rules: string[], note: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [lo] }
rules:
${rules.map((name, i) => `  - name: ${name}\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [${22 + i}] }\n`).join("")}fleet:
  url: ${cluster.urls[0]}
  host: ${HOST}
  nkey_seed_file: ${seed}
  policy: { bucket: ${BUCKET}, state_file: ${join(dir, "state", "fleet-policy.json")} }
# ${note}
`;
  writeFileSync(path, policy(["ssh"], "the file"));
  let cut = false;
  const lines: string[] = [];
  const target = {
    generation: 1,
    async apply() {
      await reachable(!cut);
      return { generation: ++this.generation, ms: 0.5 };
    },
  };
  const lifecycle = new PolicyLifecycle({
    path,
    initial: await readPolicyFile(path),
    target,
    plumbing: {
      prepare(next) {
        cut = next.rules.some((r) => r.name === "cut");
        return { commit: () => {}, abandon: () => {} };
      },
    },
    audit: (l) => lines.push(l),
    log: (l) => lines.push(l),
  });
  t.after(() => stopAcceptWorker());
  t.after(() => lifecycle.stop());
  const fleet = fleetFollow({
    policyPath: path,
    apply: (text, who, admit) => lifecycle.apply(text, who, { admit }),
    running: () => lifecycle.active,
    onTrial: () => lifecycle.onTrial,
    trialMs: 3000,
    log: (l) => lines.push(l),
  });
  t.after(() => fleet.close());
  fleet.update(lifecycle.active.model);

  const confirmed = policy(["ssh"], "revision 1");
  const good = await kv.put(KEY, confirmed);
  assert.equal((await reportOn(good)).result, "applied", lines.join("\n"));
  const trial = policy(["ssh", "local"], "on trial");
  const local = await lifecycle.apply(trial, "unix uid 0", { confirmMs: 600_000 });
  assert.ok(local.ok, local.errors.join("\n"));
  assert.ok(lifecycle.onTrial, "the local policy is on trial");

  const revision = await kv.put(KEY, policy(["ssh", "cut"], "cuts the host off"));
  const report = await reportOn(revision);
  assert.equal(report.result, "refused", lines.join("\n"));
  assert.match(report.errors.join("\n"), /^policy\.web1:1:1: reverted to the policy before it:/);
  assert.equal(
    lifecycle.active.text,
    confirmed,
    "the confirmed policy runs again, not the local trial",
  );
  assert.equal(readFileSync(path, "utf8"), confirmed, "the policy file holds the confirmed policy");
  assert.equal(report.applied_revision, good);
  assert.equal(lifecycle.onTrial, undefined);
});
