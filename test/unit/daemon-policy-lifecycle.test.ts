// The daemon's policy lifecycle with the real checker and compiler and a policy file on disk:
// a reload applies a good file and refuses a bad one (every error, the running generation kept);
// what the policy configures besides the datapath is readied first (a refusal there refuses the
// policy) and switched to after the swap; an API apply is audited with who made it, saved to the
// file, and its own file-change event is not a second reload; a mode switch is a local decision:
// the file is untouched, and the decided mode holds over the file's through a reload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { PolicyImage } from "../../src/policy/compile/kernel-image.ts";
import { TablePos, type PolicyModel } from "../../src/config/index.ts";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import { stopAcceptWorker } from "../../src/host/accept-off-thread.ts";
import {
  PolicyLifecycle,
  readPolicyFile,
  type PolicyPlumbing,
  type PolicyTarget,
} from "../../src/daemon/policy-lifecycle.ts";

const policy = (rules: string[], mode = "prevent") => `version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
attach: { interfaces: [lo] }
rules:
${rules.map((name, i) => `  - name: ${name}\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [${22 + i}] }\n`).join("")}`;

async function harness(
  t: { after: (fn: () => void) => void },
  refuse?: (m: PolicyModel) => boolean,
) {
  const dir = mkdtempSync(join(tmpdir(), `moat-lifecycle-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, policy(["ssh"]));
  const applied: PolicyImage[] = [];
  const target = {
    generation: 1,
    apply(image: PolicyImage) {
      applied.push(image);
      return { generation: ++this.generation, ms: 0.5 };
    },
  };
  const plumbed: string[] = [];
  const plumbing: PolicyPlumbing = {
    prepare(next) {
      if (refuse?.(next)) throw new Error("webhook key file is readable by others");
      const names = next.rules.map((r) => r.name).join(",");
      plumbed.push(`ready ${names}`);
      return {
        commit: () => plumbed.push(`commit ${names}`),
        abandon: () => plumbed.push(`abandon ${names}`),
      };
    },
  };
  const audit: string[] = [];
  const lines: string[] = [];
  // the mode decision, as the decisions store keeps it
  const decided: { mode?: "detect" | "prevent" } = {};
  const lifecycle = new PolicyLifecycle({
    mode: () => decided.mode,
    path,
    initial: await readPolicyFile(path),
    target,
    plumbing,
    audit: (l) => audit.push(l),
    log: (l) => lines.push(l),
  });
  return { path, lifecycle, target, applied, plumbed, audit, lines, decided };
}

test("a reload applies a good policy file and refuses a bad one, keeping the running one", async (t) => {
  const h = await harness(t);
  writeFileSync(h.path, policy(["ssh", "web"]));
  const ok = await h.lifecycle.reload("SIGHUP");
  assert.deepEqual(ok, { ok: true, generation: 2, errors: [] });
  assert.deepEqual(
    h.applied[0]?.packet.rules.map((r) => r.name),
    ["ssh", "web", "default", "default"],
  );
  assert.deepEqual(h.plumbed, ["ready ssh,web", "commit ssh,web"]);
  assert.match(h.lines.at(-1) ?? "", /applied: generation 2, 2 rules, mode prevent \(0\.5 ms\)/);

  writeFileSync(h.path, policy(["ssh"]).replace("action: allow", "action: maybe"));
  const bad = await h.lifecycle.reload("SIGHUP");
  assert.equal(bad.ok, false);
  assert.equal(bad.generation, 2);
  assert.match(bad.errors[0] ?? "", /policy\.yaml:\d+:\d+/, "FILE:LINE:COL");
  assert.ok(h.lines.includes("reload refused (SIGHUP), keeping generation 2:"));
  assert.equal(h.applied.length, 1);
  assert.deepEqual(h.lifecycle.reloads, { ok: 1, refused: 1 });
  assert.deepEqual(
    h.lifecycle.active.model.rules.map((r) => r.name),
    ["ssh", "web"],
  );
});

test("a policy whose plumbing cannot be readied is refused before the swap", async (t) => {
  const h = await harness(t, (m) => m.rules.some((r) => r.name === "hooked"));
  const result = await h.lifecycle.apply(policy(["hooked"]), "root");
  assert.equal(result.ok, false);
  assert.deepEqual(result.errors, [`${h.path}: webhook key file is readable by others`]);
  assert.equal(h.applied.length, 0);
  assert.equal(h.lifecycle.active.model.rules[0]?.name, "ssh");
});

test("an API apply is audited and saved; its own file change is not applied twice", async (t) => {
  const h = await harness(t);
  const text = policy(["ssh", "api"]);
  const result = await h.lifecycle.apply(text, "uid 0");
  assert.deepEqual(result, { ok: true, generation: 2, errors: [] });
  assert.equal(readFileSync(h.path, "utf8"), text);
  assert.match(
    h.audit[0] ?? "",
    /^POLICY APPLIED policy by uid 0: generation 2, mode prevent, sha256 [0-9a-f]{64}; rules added: api$/,
  );
  assert.deepEqual(await h.lifecycle.reload("file changed"), {
    ok: true,
    generation: 2,
    errors: [],
  });
  assert.equal(h.applied.length, 1, "the write's own change event applied nothing");

  const refused = await h.lifecycle.apply("version: 1\nrules: 3\n", "uid 0");
  assert.equal(refused.ok, false);
  assert.match(
    h.audit[1] ?? "",
    /^POLICY REFUSED policy from uid 0 \(sha256 [0-9a-f]{64}\): \d+ errors$/,
  );
  assert.equal(readFileSync(h.path, "utf8"), text, "a refused policy is not saved");
});

test("a mode decision compiles the running text in that mode; the file is untouched", async (t) => {
  const h = await harness(t);
  const text = readFileSync(h.path, "utf8");
  h.decided.mode = "detect";
  const result = await h.lifecycle.setMode("detect", "uid 0");
  assert.equal(result.ok, true);
  assert.equal(h.lifecycle.active.model.mode, "detect");
  assert.equal(h.applied[0]?.packet.rules[0]?.mode, "detect");
  assert.equal(readFileSync(h.path, "utf8"), text, "the policy file is not rewritten");
  assert.equal(h.lifecycle.active.text, text);
  assert.match(
    h.audit[0] ?? "",
    /^POLICY APPLIED mode detect by uid 0: .*; mode prevent -> detect$/,
  );
  // a reload of the file (prevent) keeps the decided mode
  writeFileSync(h.path, policy(["ssh", "web"]));
  await h.lifecycle.reload("SIGHUP");
  assert.equal(h.lifecycle.active.model.mode, "detect");
  assert.equal(h.lifecycle.active.model.rules[1]?.mode, "detect");
  // without the decision, the file's mode again
  delete h.decided.mode;
  await h.lifecycle.setMode(undefined, "uid 0");
  assert.equal(h.lifecycle.active.model.mode, "prevent");
});

test("a recompile applies the same text again; one that fails is logged, changes nothing and says so", async (t) => {
  const h = await harness(t);
  await h.lifecycle.recompile("processes changed");
  assert.equal(h.applied.length, 1);
  assert.equal(h.target.generation, 2);
  h.target.apply = () => {
    throw new Error("map create failed");
  };
  // a set change that asked for it must not be told it is in force
  await assert.rejects(h.lifecycle.recompile("processes changed"), {
    message: "the policy could not be compiled again: map create failed",
  });
  assert.match(
    h.lines.at(-1) ?? "",
    /processes changed, the policy could not be compiled again: map create failed/,
  );
  assert.deepEqual(h.plumbed.slice(-2), ["ready ssh", "abandon ssh"]);
});

test("reloads asked while one waits its turn are one reload of the file as it is then", async (t) => {
  const h = await harness(t);
  writeFileSync(h.path, policy(["ssh", "web"]));
  const asked = Array.from({ length: 11 }, () => h.lifecycle.reload("SIGHUP"));
  // written before the reload started: the one reload reads this
  writeFileSync(h.path, policy(["ssh", "web", "dns"]));
  const results = await Promise.all(asked);
  assert.equal(h.applied.length, 1, "eleven signals, one reload");
  for (const r of results) assert.deepEqual(r, { ok: true, generation: 2, errors: [] });
  assert.deepEqual(
    h.applied[0]?.packet.rules.map((r) => r.name),
    ["ssh", "web", "dns", "default", "default"],
  );
  // once it has run, the next signal is a reload of its own
  await h.lifecycle.reload("SIGHUP");
  assert.equal(h.applied.length, 2);
});

/** Resolves once `check` holds, polling (the revert runs on the lifecycle's own timer). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(check(), "the condition never held");
}

const ruleNames = (h: { lifecycle: PolicyLifecycle }) =>
  h.lifecycle.active.model.rules.map((r) => r.name);

test("a policy on trial is not saved and reverts by itself through the install path", async (t) => {
  const h = await harness(t);
  t.after(() => h.lifecycle.close());
  const saved = readFileSync(h.path, "utf8");
  const r = await h.lifecycle.apply(policy(["ssh", "web"]), "uid 0 pid 7", { confirmMs: 100 });
  assert.equal(r.ok, true);
  assert.ok(r.revertAt, "the outcome says when it reverts");
  assert.deepEqual(ruleNames(h), ["ssh", "web"]);
  assert.equal(readFileSync(h.path, "utf8"), saved, "a policy on trial is not saved");
  assert.equal(h.lifecycle.onTrial?.by, "uid 0 pid 7");
  assert.match(
    h.audit[0] ?? "",
    /^POLICY APPLIED policy on trial for 0 s by uid 0 pid 7: generation 2/,
  );

  await until(() => h.lifecycle.onTrial === undefined && ruleNames(h).length === 1);
  assert.deepEqual(ruleNames(h), ["ssh"]);
  assert.equal(h.target.generation, 3, "the revert is a new generation");
  assert.deepEqual(h.plumbed.slice(-2), ["ready ssh", "commit ssh"], "through the install path");
  assert.match(
    h.audit.at(-1) ?? "",
    /^POLICY APPLIED revert by moat \(not confirmed in time; applied by uid 0 pid 7\): generation 3, mode prevent/,
  );
  const late = await h.lifecycle.confirm("uid 0 pid 8");
  assert.equal(late.ok, false, "nothing left to confirm");
  assert.match(late.errors[0] ?? "", /no policy is on trial/);
});

test("a confirmed trial is saved and stays; trials in a row revert to the policy before the first", async (t) => {
  const h = await harness(t);
  t.after(() => h.lifecycle.close());
  await h.lifecycle.apply(policy(["ssh", "web"]), "uid 0", { confirmMs: 60_000 });
  const ok = await h.lifecycle.confirm("uid 0 pid 9");
  assert.equal(ok.ok, true);
  assert.equal(readFileSync(h.path, "utf8"), policy(["ssh", "web"]), "saved once confirmed");
  assert.equal(h.lifecycle.onTrial, undefined);
  assert.match(h.audit.at(-1) ?? "", /^POLICY CONFIRMED policy by uid 0 pid 9: generation 2/);

  await h.lifecycle.apply(policy(["a"]), "uid 0", { confirmMs: 60_000 });
  await h.lifecycle.apply(policy(["b"]), "uid 0", { confirmMs: 100 });
  await until(() => h.lifecycle.onTrial === undefined);
  assert.deepEqual(ruleNames(h), ["ssh", "web"], "back to the last confirmed policy");
});

test("an apply without --confirm ends a trial: it is saved, and nothing reverts", async (t) => {
  const h = await harness(t);
  t.after(() => h.lifecycle.close());
  await h.lifecycle.apply(policy(["ssh", "web"]), "uid 0", { confirmMs: 100 });
  await h.lifecycle.apply(policy(["other"]), "uid 0");
  assert.equal(h.lifecycle.onTrial, undefined);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(ruleNames(h), ["other"]);
  assert.equal(readFileSync(h.path, "utf8"), policy(["other"]));
});

test("a reloaded policy's lines are worked out on the worker once it is in place, not on this thread", async (t) => {
  t.after(() => stopAcceptWorker());
  const h = await harness(t);
  const text = policy(["ssh", "web", "dns"]);
  writeFileSync(h.path, text);
  assert.equal((await h.lifecycle.reload("SIGHUP")).ok, true);
  const rules = h.lifecycle.active.model.rules;
  const pos = rules[0]?.pos;
  assert.ok(pos instanceof TablePos, "read on the worker: a position of its table");
  // a line read now would read the file again here: none is read until the worker's offsets came
  for (let i = 0; i < 200 && !pos.table.located; i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(pos.table.located, "the worker sent where each rule is");
  assert.equal(pos.table.made, false, "the running policy holds its positions packed, unread");
  const here = acceptPolicy(text, h.path).policy?.model.rules ?? [];
  assert.deepEqual(
    rules.map((r) => `${r.pos.line}:${r.pos.col}`),
    here.map((r) => `${r.pos.line}:${r.pos.col}`),
  );
});

test("a change still being applied when the daemon stops is dropped, not thrown", async (t) => {
  const h = await harness(t);
  t.after(() => stopAcceptWorker());
  let fail: ((err: Error) => void) | undefined;
  (h.target as unknown as { apply: (image: PolicyImage) => Promise<never> }).apply = () =>
    new Promise((_resolve, reject) => (fail = reject));
  writeFileSync(h.path, policy(["ssh", "web"]));
  const reload = h.lifecycle.reload("SIGHUP");
  for (let i = 0; i < 200 && !fail; i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(fail, "the new policy is being applied");
  h.lifecycle.stop();
  fail(new Error("the datapath stopped: the policy was not applied"));
  const result = await reload;
  assert.deepEqual(
    { ok: result.ok, errors: result.errors },
    { ok: false, errors: ["the datapath stopped: the policy was not applied"] },
  );
  assert.deepEqual(h.plumbed, ["ready ssh,web", "abandon ssh,web"]);
});

test("after a good reload, a policy the datapath fails to apply is an error, not a quiet refusal", async (t) => {
  const h = await harness(t);
  t.after(() => stopAcceptWorker());
  writeFileSync(h.path, policy(["ssh", "web"]));
  assert.equal((await h.lifecycle.reload("SIGHUP")).ok, true);
  h.target.apply = () => {
    throw new Error("map moat_remote4: cannot allocate memory");
  };
  writeFileSync(h.path, policy(["ssh", "web", "dns"]));
  await assert.rejects(h.lifecycle.reload("SIGHUP"), /cannot allocate memory/);
});

test("a decision's connections are cut once the new policy is built, just before it goes in", async (t) => {
  const h = await harness(t);
  t.after(() => stopAcceptWorker());
  const steps: string[] = [];
  const target = h.target as unknown as PolicyTarget & { generation: number };
  target.apply = async (_image, _bindings, beforeFlip) => {
    steps.push("build");
    await new Promise((r) => setImmediate(r));
    steps.push("built");
    beforeFlip?.();
    steps.push("flip");
    return { generation: ++target.generation, ms: 0.5 };
  };
  const result = await h.lifecycle.decisionsChanged("decision d1 expired", () => steps.push("cut"));
  assert.equal(result.ok, true);
  assert.deepEqual(steps, ["build", "built", "cut", "flip"]);
});

test("a reload lets the policies before it go: the first's model and image, the compiled image of the running one", async (t) => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const dir = mkdtempSync(join(tmpdir(), `moat-lifecycle-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, policy(["ssh"]));
  let first: Awaited<ReturnType<typeof readPolicyFile>> | undefined = await readPolicyFile(path);
  const gone = { model: new WeakRef(first.model), image: new WeakRef(first.image) };
  let running: WeakRef<PolicyImage> | undefined;
  let generation = 1;
  const target: PolicyTarget = {
    get generation() {
      return generation;
    },
    apply(image: PolicyImage) {
      running = new WeakRef(image);
      return { generation: ++generation, ms: 0.5 };
    },
  };
  const lifecycle = new PolicyLifecycle({
    path,
    initial: first,
    target,
    plumbing: { prepare: () => ({ commit: () => {}, abandon: () => {} }) },
    audit: () => {},
    log: () => {},
  });
  first = undefined;
  writeFileSync(path, policy(["ssh", "web"]));
  assert.equal((await lifecycle.reload("SIGHUP")).ok, true);
  t.after(() => stopAcceptWorker());
  // a collection can leave what became garbage meanwhile to the next one
  for (let i = 0; i < 10 && (gone.model.deref() || running?.deref()); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.deepEqual(
    lifecycle.active.model.rules.map((r) => r.name),
    ["ssh", "web"],
  );
  assert.equal(gone.model.deref(), undefined, "the first policy's model is garbage");
  assert.equal(gone.image.deref(), undefined, "the first policy's image is garbage");
  assert.equal(running?.deref(), undefined, "the running policy's image is garbage once applied");
});
