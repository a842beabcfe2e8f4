// A local decision's process user: kept with the executable path, stored and read back, compared
// when a new decision replaces one for the same target, refused when it is not a uid or a name;
// a decision stored without one holds for every user, as it always did.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decisionProblems } from "../../src/config/decision.ts";
import { DecisionStore, type DecisionRequest } from "../../src/daemon/decision-store.ts";
import { decisionRules } from "../../src/policy/decision-rules.ts";
import { parsePolicy } from "../../src/config/index.ts";

const request: DecisionRequest = {
  action: "allow",
  direction: "egress",
  remote: "192.0.2.9",
  protocol: "tcp",
  port: 443,
  process: { path: "/usr/bin/curl", user: 1000 },
  lifetime: "forever",
  by: "unix uid 0 pid 7",
};

function tempStore(t: { after: (f: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-decision-user-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "decisions.json");
  const logs: string[] = [];
  return { path, logs, open: () => new DecisionStore({ path, log: (l) => logs.push(l) }) };
}

test("a decision's user is stored, read back, and becomes its rule's process.user", (t) => {
  const s = tempStore(t);
  const made = s.open().add(request).decision;
  assert.deepEqual(made.process, { path: "/usr/bin/curl", user: 1000 });
  const named = s.open().add({ ...request, process: { path: "/usr/bin/curl", user: "alice" } });
  assert.equal(named.replaced, undefined, "another user's run is another target");
  const [first, second] = s.open().list();
  assert.deepEqual(first?.process, { path: "/usr/bin/curl", user: 1000 });
  assert.deepEqual(second?.process, { path: "/usr/bin/curl", user: "alice" });
  const model = { ...parsePolicy("version: 1\n", "p.yaml"), decisions: s.open().list() };
  const rules = decisionRules(model);
  assert.deepEqual(rules[0]?.process?.user, [1000]);
  assert.deepEqual(rules[1]?.process?.user, ["alice"]);
  assert.ok(!s.logs.some((l) => l.includes("left out") || l.includes("dropped")), s.logs.join());
});

test("the same program and user replace; digits are the uid; no user is every user", (t) => {
  const s = tempStore(t);
  const store = s.open();
  const first = store.add(request).decision;
  const again = store.add({
    ...request,
    action: "block",
    process: { path: "/usr/bin/curl", user: "1000" },
  });
  assert.equal(again.replaced?.id, first.id);
  assert.deepEqual(again.decision.process, { path: "/usr/bin/curl", user: "1000" });
  const everyone = store.add({ ...request, process: { path: "/usr/bin/curl" } });
  assert.equal(everyone.replaced, undefined);
  assert.equal(everyone.decision.process?.user, undefined);
  const model = { ...parsePolicy("version: 1\n", "p.yaml"), decisions: [everyone.decision] };
  assert.equal(decisionRules(model)[0]?.process?.user, undefined, "absent: whoever runs it");
});

test("a user that is not a uid or a name is refused, from a request and from the file", (t) => {
  const s = tempStore(t);
  const store = s.open();
  const bad = (user: unknown) =>
    ({ ...request, process: { path: "/usr/bin/curl", user } }) as DecisionRequest;
  assert.throws(() => store.add(bad(-1)), /process\.user: a uid or a user name/);
  assert.throws(() => store.add(bad("")), /process\.user: a uid or a user name/);
  assert.throws(() => store.add(bad(1.5)), /process\.user: a uid or a user name/);
  assert.throws(() => store.add(bad(2 ** 32)), /process\.user: a uid is at most 4294967294/);
  assert.throws(() => store.add(bad("4294967295")), /a uid is at most 4294967294, got 4294967295/);
  assert.throws(() => store.add(bad([1000])), /process\.user: a uid or a user name/);
  assert.deepEqual(store.list(), []);
  const stored = {
    id: "d1",
    action: "allow",
    direction: "egress",
    remote: "192.0.2.9",
    process: { path: "/usr/bin/curl", user: { uid: 1000 } },
    lifetime: "forever",
    created: "2026-12-01T00:00:00.000Z",
    by: "x",
  };
  assert.deepEqual(decisionProblems(stored), ["process.user: a uid or a user name"]);
  writeFileSync(s.path, JSON.stringify({ version: 1, decisions: [stored] }), { mode: 0o600 });
  assert.deepEqual(s.open().list(), [], "a bad user is not read as every user");
  assert.ok(
    s.logs.some((l) => /a stored decision is dropped: process\.user/.test(l)),
    s.logs.join(),
  );
});
