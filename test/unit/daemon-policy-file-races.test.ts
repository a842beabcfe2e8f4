// The policy file and the API's applies, when both change it: a file reload after the API saved
// a policy applies whatever the file holds now (the API's own write is skipped once, never a later
// edit that happens to match it); an API apply never overwrites an edit the daemon has not read
// (it is refused, the running policy stays, and the reload applies the edit); the first reload
// waits no negative time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stopAcceptWorker } from "../../src/host/accept-off-thread.ts";
import {
  PolicyLifecycle,
  readPolicyFile,
  type PolicyPlumbing,
} from "../../src/daemon/policy-lifecycle.ts";

const policy = (rules: string[]) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [lo] }
rules:
${rules.map((name, i) => `  - name: ${name}\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [${22 + i}] }\n`).join("")}`;

test.after(() => stopAcceptWorker());

async function harness(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), `moat-file-races-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, policy(["ssh"]));
  const target = {
    generation: 1,
    apply() {
      return { generation: ++this.generation, ms: 0.5 };
    },
  };
  const plumbing: PolicyPlumbing = { prepare: () => ({ commit() {}, abandon() {} }) };
  const lines: string[] = [];
  const audit: string[] = [];
  const lifecycle = new PolicyLifecycle({
    path,
    initial: await readPolicyFile(path),
    target,
    plumbing,
    audit: (l) => audit.push(l),
    log: (l) => lines.push(l),
  });
  const running = () => lifecycle.active.model.rules.map((r) => r.name).join(",");
  const onDisk = () => readFileSync(path, "utf8");
  return { path, lifecycle, target, lines, audit, running, onDisk };
}

test("the first reload waits no negative time", async (t) => {
  const h = await harness(t);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on("warning", onWarning);
  t.after(() => process.off("warning", onWarning));
  // (the first test of the file: a warning is given once a process)
  writeFileSync(h.path, policy(["ssh", "web"]));
  assert.equal((await h.lifecycle.reload("SIGHUP")).ok, true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings, []);
});

test("a file restored to what the API saved before is applied by its reload", async (t) => {
  const h = await harness(t);
  assert.equal((await h.lifecycle.apply(policy(["ssh", "web"]), "api")).ok, true);
  // the operator edits the file before the reload of the API's own write ran
  writeFileSync(h.path, policy(["ssh", "dns"]));
  const edit = await h.lifecycle.reload("file changed");
  assert.deepEqual([edit.ok, h.running()], [true, "ssh,dns"]);
  // and undoes the edit: the file holds what the API saved, and that is applied
  writeFileSync(h.path, policy(["ssh", "web"]));
  const undo = await h.lifecycle.reload("file changed");
  assert.deepEqual([undo.ok, h.running()], [true, "ssh,web"]);
  assert.equal(undo.generation, 4);
});

test("the API's own write is still not a second reload", async (t) => {
  const h = await harness(t);
  await h.lifecycle.apply(policy(["ssh", "web"]), "api");
  const own = await h.lifecycle.reload("file changed");
  assert.deepEqual(own, { ok: true, generation: 2, errors: [] });
  assert.equal(h.target.generation, 2);
});

test("an edit saved while an API apply compiles is kept: the apply is refused", async (t) => {
  const h = await harness(t);
  const apply = h.lifecycle.apply(policy(["ssh", "web"]), "api");
  writeFileSync(h.path, policy(["ssh", "dns"])); // saved while the apply compiles
  const reload = h.lifecycle.reload("file changed");
  const applied = await apply;
  assert.equal(applied.ok, false);
  assert.equal(applied.generation, 1);
  assert.equal(applied.errors.length, 1);
  assert.match(
    applied.errors[0] ?? "",
    /policy\.yaml:1:1: the policy file changed on disk since the daemon read it; reload it, or apply again/,
  );
  assert.equal(h.running(), "ssh");
  assert.equal(h.onDisk(), policy(["ssh", "dns"]));
  assert.ok(
    h.audit.some((l) => l.includes("REFUSED")),
    h.audit.join("\n"),
  );
  // the file's reload applies the edit; an apply after it is saved again
  const r = await reload;
  assert.deepEqual([r.ok, h.running()], [true, "ssh,dns"]);
  const again = await h.lifecycle.apply(policy(["ssh", "web"]), "api");
  assert.deepEqual([again.ok, h.running()], [true, "ssh,web"]);
  assert.equal(h.onDisk(), policy(["ssh", "web"]));
});

test("an edit the daemon has not read yet is not overwritten by an apply either", async (t) => {
  const h = await harness(t);
  writeFileSync(h.path, policy(["ssh", "dns"])); // the watcher's reload has not run yet
  const applied = await h.lifecycle.apply(policy(["ssh", "web"]), "api");
  assert.equal(applied.ok, false);
  assert.equal(h.running(), "ssh");
  assert.equal(h.onDisk(), policy(["ssh", "dns"]));
  // an edit the daemon read and refused is the operator's to fix, or the API's to replace
  writeFileSync(h.path, "version: 1\nmode: nope\n");
  assert.equal((await h.lifecycle.reload("file changed")).ok, false);
  const replaced = await h.lifecycle.apply(policy(["ssh", "web"]), "api");
  assert.deepEqual([replaced.ok, h.running()], [true, "ssh,web"]);
  assert.equal(h.onDisk(), policy(["ssh", "web"]));
});

test("a trial is not confirmed over an edit of the file", async (t) => {
  const h = await harness(t);
  const trial = await h.lifecycle.apply(policy(["ssh", "web"]), "api", { confirmMs: 60_000 });
  assert.equal(trial.ok, true);
  writeFileSync(h.path, policy(["ssh", "dns"]));
  const confirmed = await h.lifecycle.confirm("api");
  assert.equal(confirmed.ok, false);
  assert.match(confirmed.errors[0] ?? "", /changed on disk/);
  assert.equal(h.onDisk(), policy(["ssh", "dns"]));
  assert.ok(h.lifecycle.onTrial, "still on trial");
  h.lifecycle.close();
});
