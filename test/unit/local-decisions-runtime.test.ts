// The local decisions at run time (src/daemon/local-decisions.ts), with the install path and the
// cut faked: an answer to the review queue becomes a decision and the entry leaves; a refused
// install undoes it; an expiring allow has its connections cut before the policy without it goes
// in; a "once" decision goes when its connection's event names it, without a cut; nothing is
// decided by a timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { DecisionStore } from "../../src/daemon/decision-store.ts";
import { LocalDecisions } from "../../src/daemon/local-decisions.ts";
import { evaluate } from "../../src/policy/evaluator.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

const model = parsePolicy(
  "version: 1\nmode: detect\ndefaults: { ingress: block, egress: block }\n",
  "p.yaml",
);

const unknown = (over: Partial<MoatEvent> = {}): MoatEvent =>
  ({
    time: new Date().toISOString(),
    type: "detected",
    verdict: "detected",
    mode: "detect",
    rule: "default",
    direction: "egress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "192.0.2.7", port: 443, names: ["api.example.org"] },
    interface: "eth0",
    process: { pid: 5, name: "curl", path: "/usr/bin/curl", user: 0, cgroup: "/", container: null },
    layer7: null,
    connection: "1",
    reason: "new",
    hook: "connect",
    ...over,
  }) as MoatEvent;

function setUp(t: { after: (f: () => void) => void }, refuse = false) {
  const steps: string[] = [];
  const store = new DecisionStore({ path: null, log: () => {} });
  const decisions = new LocalDecisions({
    store,
    install: (why, beforeSwap) => {
      if (refuse) return Promise.resolve({ ok: false, generation: 1, errors: ["cannot"] });
      beforeSwap?.();
      steps.push(`install: ${why} with [${store.list().map((d) => d.remote)}]`);
      return Promise.resolve({ ok: true, generation: 2, errors: [] });
    },
    model: () => model,
    installMode: (mode, who) => {
      if (refuse) return Promise.resolve({ ok: false, generation: 1, errors: ["cannot"] });
      steps.push(`mode ${mode ?? "file"} by ${who} with ${store.mode()?.mode ?? "none"}`);
      return Promise.resolve({ ok: true, generation: 2, errors: [] });
    },
    cut: (rule) => {
      steps.push(`cut ${rule}`);
      return 1;
    },
    audit: (line) => steps.push(`audit: ${line}`),
    log: () => {},
  });
  t.after(() => decisions.close());
  return { steps, store, decisions };
}

test("moat mode is a decision: stored, installed through the mode path, undone if refused", async (t) => {
  const { store, decisions, steps } = setUp(t);
  const made = await decisions.setMode("prevent", "tester");
  assert.ok(made.ok);
  assert.equal(store.mode()?.mode, "prevent");
  assert.deepEqual(steps, ["mode prevent by tester with prevent"]);
  assert.equal(decisions.view().mode?.mode, "prevent");
  const cleared = await decisions.setMode(undefined, "tester");
  assert.ok(cleared.ok);
  assert.equal(store.mode(), undefined);
  assert.equal(steps.at(-1), "mode file by tester with none");

  const refusing = setUp(t, true);
  const refused = await refusing.decisions.setMode("detect", "tester");
  assert.deepEqual(refused, { ok: false, generation: 1, errors: ["cannot"] });
  assert.equal(refusing.store.mode(), undefined, "a refused mode is not kept");
});

test("an answer becomes a decision for the entry's identity; the entry leaves the queue", async (t) => {
  const { store, decisions } = setUp(t);
  decisions.observe(unknown());
  decisions.observe(unknown());
  const [entry] = decisions.review().entries;
  assert.equal(entry?.count, 2);
  const made = await decisions.answer(
    { id: entry?.id ?? "", action: "allow", scope: "wildcard", lifetime: "1h" },
    "tester",
  );
  assert.ok(made.ok);
  assert.equal(made.decision.remote, "**.example.org");
  assert.deepEqual(made.decision.process, { path: "/usr/bin/curl", user: 0 });
  assert.equal(made.decision.port, 443);
  assert.equal(made.decision.review, entry?.id);
  assert.deepEqual(decisions.review().entries, []);
  assert.equal(store.list().length, 1);
  const domain = await decisions.answer(
    { id: "nope", action: "block", scope: "domain", lifetime: "1h" },
    "tester",
  );
  assert.deepEqual(domain, { ok: false, errors: ["no review queue entry nope"] });
});

test("by domain needs a name; a refused install undoes the decision", async (t) => {
  const { store, decisions, steps } = setUp(t, true);
  decisions.observe(unknown({ remote: { ip: "192.0.2.8", port: 80 } }));
  const [entry] = decisions.review().entries;
  const noName = await decisions.answer(
    { id: entry?.id ?? "", action: "allow", scope: "domain", lifetime: "once" },
    "tester",
  );
  assert.equal(noName.ok, false);
  assert.match(noName.ok ? "" : (noName.errors[0] ?? ""), /has no name moat learned/);
  const refused = await decisions.answer(
    { id: entry?.id ?? "", action: "allow", scope: "host", lifetime: "once" },
    "tester",
  );
  assert.deepEqual(refused, { ok: false, errors: ["cannot"] });
  assert.deepEqual(store.list(), []);
  assert.equal(decisions.review().entries.length, 1, "the entry still waits");
  assert.match(
    steps.at(-1) ?? "",
    /^audit: DECISION REFUSED decision \S+ \(allow egress 192\.0\.2\.8/,
  );
});

test("an allow that expires: its connections are cut, then the policy without it goes in", async (t) => {
  const { store, decisions, steps } = setUp(t);
  const made = await decisions.add(
    { action: "allow", direction: "egress", remote: "192.0.2.9", lifetime: "1s" },
    "tester",
  );
  assert.ok(made.ok);
  steps.length = 0;
  await new Promise((r) => setTimeout(r, 1300));
  assert.deepEqual(steps, [
    `cut decision:${made.decision.id}`,
    `install: decision ${made.decision.id} expired with []`,
  ]);
  assert.deepEqual(store.list(), []);
});

test("a once decision goes with its first connection, which is not cut", async (t) => {
  const { store, decisions, steps } = setUp(t);
  const made = await decisions.add(
    { action: "allow", direction: "egress", remote: "192.0.2.10", lifetime: "once" },
    "tester",
  );
  assert.ok(made.ok);
  steps.length = 0;
  const rule = `decision:${made.decision.id}`;
  decisions.observe(unknown({ type: "allowed", verdict: "allowed", rule }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(store.list(), []);
  assert.deepEqual(steps, [
    `audit: DECISION STORED decision ${made.decision.id} removed by moat (used once)`,
    `install: decision ${made.decision.id} removed by moat (used once) with []`,
  ]);
  // a connection decided by a decision is not unknown: nothing was queued
  assert.deepEqual(decisions.review().entries, []);
});

test("a decision is audited when it is stored, before the policy with it is installed", async (t) => {
  const audits: string[] = [];
  const store = new DecisionStore({ path: null, log: () => {} });
  // an install that never ends: the daemon killed while the policy with it waits its turn
  const decisions = new LocalDecisions({
    store,
    install: () => new Promise(() => {}),
    model: () => model,
    cut: () => 0,
    audit: (line) => audits.push(line),
    log: () => {},
  });
  t.after(() => decisions.close());
  void decisions.add(
    { action: "block", direction: "ingress", remote: "192.0.2.9", lifetime: "forever" },
    "unix uid 0",
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(store.list().length, 1, "stored: a new daemon enforces it");
  assert.match(
    audits.join("\n"),
    /decision \S+ \(block ingress 192\.0\.2\.9, forever\) added by unix uid 0/,
  );
});

test("a wildcard answer stops at the registrable domain, never below a public suffix", async (t) => {
  const { decisions } = setUp(t);
  const wildcardOf = async (name: string) => {
    decisions.observe(unknown({ remote: { ip: "192.0.2.20", port: 443, names: [name] } }));
    const entry = decisions.review().entries.find((e) => e.remote.names?.[0] === name);
    const made = await decisions.answer(
      { id: entry?.id ?? "", action: "allow", scope: "wildcard", lifetime: "1h" },
      "tester",
    );
    return made.ok ? made.decision.remote : `refused: ${made.errors.join("; ")}`;
  };
  assert.equal(await wildcardOf("evil.co.uk"), "**.evil.co.uk");
  assert.equal(await wildcardOf("a.b.example.co.uk"), "**.b.example.co.uk");
  assert.equal(await wildcardOf("example.co.uk"), "**.example.co.uk");
  assert.equal(await wildcardOf("me.github.io"), "**.me.github.io");
  assert.equal(await wildcardOf("api.github.com"), "**.github.com");
  assert.match(await wildcardOf("co.uk"), /^refused: 'co\.uk' is a public suffix/);
  assert.match(await wildcardOf("github.io"), /^refused: 'github\.io' is a public suffix/);
  assert.match(await wildcardOf("printer"), /^refused: 'printer' is a public suffix/);
});

test("a program known only by its name: an allow is refused, a block is taken", async (t) => {
  const { store, decisions } = setUp(t);
  const process = { pid: 6, name: "curl", path: "", user: 1000, cgroup: "/", container: null };
  decisions.observe(unknown({ process }));
  const [entry] = decisions.review().entries;
  const allow = await decisions.answer(
    { id: entry?.id ?? "", action: "allow", scope: "host", lifetime: "1h" },
    "tester",
  );
  assert.equal(allow.ok, false);
  assert.match(
    allow.ok ? "" : (allow.errors[0] ?? ""),
    /known only by its name, which any process can take/,
  );
  assert.deepEqual(store.list(), []);
  assert.equal(decisions.review().entries.length, 1, "the entry still waits");
  const block = await decisions.answer(
    { id: entry?.id ?? "", action: "block", scope: "host", lifetime: "1h" },
    "tester",
  );
  assert.ok(block.ok);
  assert.equal(block.decision.process, undefined);
});

test("an allow from the queue holds for the program run by the entry's user, not by another", async (t) => {
  const { decisions } = setUp(t);
  const process = {
    pid: 7,
    name: "curl",
    path: "/usr/bin/curl",
    user: 1000,
    cgroup: "/",
    container: null,
  };
  decisions.observe(unknown({ remote: { ip: "192.0.2.30", port: 443 }, process }));
  const [entry] = decisions.review().entries;
  const made = await decisions.answer(
    { id: entry?.id ?? "", action: "allow", scope: "host", lifetime: "1h" },
    "tester",
  );
  assert.ok(made.ok);
  const judged = (user: number) =>
    evaluate(
      { ...model, mode: "prevent", decisions: [made.decision] },
      {
        family: 4,
        direction: "egress",
        protocol: "tcp",
        local: { ip: "10.0.0.1", port: 40000 },
        remote: { ip: "192.0.2.30", port: 443 },
        process: { path: "/usr/bin/curl", name: "curl", user },
      },
    );
  assert.equal(judged(1000).rule, `decision:${made.decision.id}`);
  assert.equal(judged(1000).verdict, "allowed");
  const other = judged(0);
  assert.equal(other.rule, "default", "root's curl is not the connection that was reviewed");
  assert.equal(other.verdict, "blocked");
  assert.deepEqual(made.decision.process, { path: "/usr/bin/curl", user: 1000 });
});
