// Local decisions: their layer's place in the evaluation order (after dns:doh, before the file's
// rules, named decision:<id> in verdicts and explanations), their store (persistence across a
// restart, expiry, "until reboot", replacement) and the review queue (what it takes, de-duplicated
// per identity and destination, bounded with an overflow count).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  parsePolicy,
  textOnlyHost,
  type LocalDecision,
  type PolicyModel,
} from "../../src/config/index.ts";
import { acceptPolicyText } from "../../src/policy/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import { DecisionStore } from "../../src/daemon/decision-store.ts";
import { MAX_REVIEW, queuesEvent, ReviewQueue } from "../../src/daemon/review-queue.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import { Attribution } from "../../src/attribution/attributor.ts";
import { fileIdentities } from "../../src/attribution/file-identity.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import { lookupImage } from "../../src/policy/compile/lookup.ts";
import { processClass } from "../../src/policy/compile/process.ts";

const policy = (mode: "detect" | "prevent", extra = "") =>
  parsePolicy(
    `version: 1
mode: ${mode}
defaults: { ingress: block, egress: block }
${extra}rules:
  - name: web-out
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [443] }
  - name: no-db
    direction: egress
    action: block
    layer3: { remote: [198.51.100.7] }
`,
    "policy.yaml",
  );

const decision = (over: Partial<LocalDecision>): LocalDecision => ({
  id: "d1",
  action: "allow",
  direction: "egress",
  remote: "198.51.100.7",
  lifetime: "forever",
  created: "2026-12-01T00:00:00.000Z",
  by: "unix uid 0 pid 1",
  ...over,
});

const egress = (ip: string, port: number): ConnectionFacts => ({
  family: 4,
  direction: "egress",
  protocol: "tcp",
  local: { ip: "10.0.0.1", port: 40000 },
  remote: { ip, port },
});

const withDecisions = (m: PolicyModel, decisions: LocalDecision[]): PolicyModel => ({
  ...m,
  decisions,
});

test("a decision is judged before the file's rules and named decision:<id>", () => {
  const m = withDecisions(policy("prevent"), [decision({ port: 5432, protocol: "tcp" })]);
  const d = evaluate(m, egress("198.51.100.7", 5432));
  assert.equal(d.verdict, "allowed");
  assert.equal(d.rule, "decision:d1");
  assert.match(d.reason, /^local decision d1 \(decision:d1; forever; by unix uid 0 pid 1\): /);
  assert.ok(!("line" in d && d.line !== undefined), "a decision has no line in the file");
  // a port it does not name falls through to the file's rules
  assert.equal(evaluate(m, egress("198.51.100.7", 22)).rule, "no-db");
  // without it, the file's rule decides
  assert.equal(evaluate(policy("prevent"), egress("198.51.100.7", 5432)).rule, "no-db");
});

test("the first decision that matches wins, in the order they were made", () => {
  const m = withDecisions(policy("prevent"), [
    decision({ id: "first", action: "block", remote: "203.0.113.0/24" }),
    decision({ id: "second", action: "allow", remote: "203.0.113.9" }),
  ]);
  const d = evaluate(m, egress("203.0.113.9", 443));
  assert.equal(d.rule, "decision:first");
  assert.equal(d.verdict, "blocked");
});

test("a block decision blocks in detect mode too; an allow there is simply allowed", () => {
  const m = withDecisions(policy("detect"), [
    decision({ id: "no", action: "block", remote: "192.0.2.1" }),
    decision({ id: "yes", remote: "192.0.2.2" }),
  ]);
  const blocked = evaluate(m, egress("192.0.2.1", 80));
  assert.equal(blocked.verdict, "blocked");
  assert.equal(blocked.rule, "decision:no");
  assert.equal(evaluate(m, egress("192.0.2.2", 80)).verdict, "allowed");
  // unknown: no rule and no decision: detected by the defaults
  const unknown = evaluate(m, egress("192.0.2.3", 80));
  assert.equal(unknown.verdict, "detected");
  assert.equal(unknown.rule, "default");
});

test("a decision for one process defers without the process, as a process rule does", () => {
  const m = withDecisions(policy("prevent"), [
    decision({ remote: "192.0.2.5", id: "curl", process: { path: "/usr/bin/curl" } }),
  ]);
  const deferred = evaluate(m, egress("192.0.2.5", 80));
  assert.equal(deferred.verdict, "deferred");
  const known = evaluate(m, {
    ...egress("192.0.2.5", 80),
    process: { path: "/usr/bin/curl", name: "curl", user: 0 },
  });
  assert.equal(known.rule, "decision:curl");
});

test("a decision about an IPv4-mapped address (a dual-stack socket's connection) decides that IPv4 address", () => {
  const m = withDecisions(policy("prevent"), [
    decision({ id: "mapped", remote: "::ffff:192.0.2.7" }),
    decision({ id: "mapped-range", remote: "::ffff:192.0.2.16/124" }),
  ]);
  assert.equal(evaluate(m, egress("192.0.2.7", 80)).rule, "decision:mapped");
  assert.equal(evaluate(m, egress("192.0.2.20", 80)).rule, "decision:mapped-range");
  assert.equal(evaluate(m, egress("192.0.2.8", 80)).rule, "default");
});

test("a decision by name matches the addresses its identity resolved, a wildcard those below", () => {
  const m = withDecisions(policy("prevent"), [
    decision({ id: "ex", remote: "**.example.org", port: 80, protocol: "tcp" }),
  ]);
  const named = (names: string[]) => ({
    ...egress("192.0.2.80", 80),
    remote: { ip: "192.0.2.80", port: 80, names },
  });
  assert.equal(evaluate(m, named(["a.b.example.org"])).rule, "decision:ex");
  assert.equal(evaluate(m, named(["example.net"])).rule, "default");
});

function tempStore(t: { after: (f: () => void) => void }, now: { ms: number }, boot = "boot-1") {
  const dir = mkdtempSync(join(tmpdir(), "moat-decisions-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "state", "decisions.json");
  const logs: string[] = [];
  const open = (b = boot) =>
    new DecisionStore({ path, log: (l) => logs.push(l), boot: b, now: () => now.ms });
  return { path, logs, open };
}

const request = {
  action: "allow" as const,
  direction: "egress" as const,
  remote: "192.0.2.9",
  protocol: "tcp" as const,
  port: 443,
  by: "unix uid 0 pid 7",
};

test("decisions survive a restart in a 0600 file; expired ones are gone when read", (t) => {
  const now = { ms: Date.parse("2026-12-01T10:00:00Z") };
  const s = tempStore(t, now);
  const store = s.open();
  const hour = store.add({ ...request, lifetime: "1h" }).decision;
  const forever = store.add({ ...request, remote: "192.0.2.10", lifetime: "forever" }).decision;
  assert.equal(hour.expires, "2026-12-01T11:00:00.000Z");
  assert.equal(statSync(s.path).mode & 0o777, 0o600);
  const again = s.open();
  assert.deepEqual(
    again.list().map((d) => d.id),
    [hour.id, forever.id],
  );
  now.ms += 3600_000;
  const later = s.open();
  assert.deepEqual(
    later.list().map((d) => d.id),
    [forever.id],
  );
  assert.ok(s.logs.some((l) => l.includes(`decision ${hour.id} expired`)));
  const file = JSON.parse(readFileSync(s.path, "utf8")) as { decisions: LocalDecision[] };
  assert.deepEqual(
    file.decisions.map((d) => d.id),
    [forever.id],
  );
});

test("the mode decision (moat mode) is kept in the same file and survives a restart", (t) => {
  const now = { ms: Date.parse("2026-12-01T10:00:00Z") };
  const s = tempStore(t, now);
  const store = s.open();
  assert.equal(store.mode(), undefined);
  const made = store.setMode("prevent", "unix uid 0 pid 7");
  assert.deepEqual(made, {
    mode: "prevent",
    by: "unix uid 0 pid 7",
    created: "2026-12-01T10:00:00.000Z",
  });
  store.add({ ...request, lifetime: "forever" });
  const again = s.open();
  assert.deepEqual(again.mode(), made);
  assert.equal(again.list().length, 1);
  const file = JSON.parse(readFileSync(s.path, "utf8")) as { mode?: unknown };
  assert.deepEqual(file.mode, made);
  assert.equal(statSync(s.path).mode & 0o777, 0o600);
  assert.deepEqual(again.setMode(undefined, "x"), undefined);
  assert.equal(s.open().mode(), undefined, "cleared: the file's mode again");
  // a malformed mode decision is dropped, said; the decisions stay
  writeFileSync(s.path, JSON.stringify({ version: 1, decisions: [], mode: { mode: "block" } }));
  assert.equal(s.open().mode(), undefined);
  assert.ok(s.logs.some((l) => /the stored mode decision is dropped/.test(l)));
});

test("takeExpired removes what is due; nextExpiry says when the next one is", (t) => {
  const now = { ms: Date.parse("2026-12-01T10:00:00Z") };
  const store = tempStore(t, now).open();
  const short = store.add({ ...request, lifetime: "30s" }).decision;
  store.add({ ...request, remote: "192.0.2.11", lifetime: "2h" });
  assert.equal(store.nextExpiry(), now.ms + 30_000);
  assert.deepEqual(store.takeExpired(), []);
  now.ms += 30_000;
  assert.deepEqual(
    store.takeExpired().map((d) => d.id),
    [short.id],
  );
  assert.equal(store.nextExpiry(), Date.parse("2026-12-01T12:00:00Z"));
});

test("'until reboot' ends with the boot; a new decision for the same target replaces the old", (t) => {
  const now = { ms: Date.now() };
  const s = tempStore(t, now);
  const store = s.open();
  const first = store.add({ ...request, lifetime: "reboot" }).decision;
  assert.equal(first.boot, "boot-1");
  const { decision: second, replaced } = store.add({
    ...request,
    action: "block",
    lifetime: "forever",
  });
  assert.equal(replaced?.id, first.id);
  assert.deepEqual(
    store.list().map((d) => d.id),
    [second.id],
  );
  store.add({ ...request, remote: "192.0.2.12", lifetime: "reboot" });
  assert.equal(s.open("boot-1").list().length, 2);
  assert.deepEqual(
    s
      .open("boot-2")
      .list()
      .map((d) => d.id),
    [second.id],
  );
});

test("a bad decision is refused with what is wrong; a bad file starts with none", (t) => {
  const now = { ms: Date.now() };
  const s = tempStore(t, now);
  const store = s.open();
  assert.throws(
    () => store.add({ ...request, remote: "set:corp", lifetime: "1h" }),
    /remote: 'set:corp' is not an address/,
  );
  assert.throws(() => store.add({ ...request, lifetime: "soon" }), /lifetime 'soon' is not once/);
  assert.throws(
    () => store.add({ ...request, protocol: "icmp", lifetime: "1h" }),
    /port: only with protocol tcp or udp/,
  );
  store.add({ ...request, lifetime: "1h" });
  writeFileSync(s.path, "{not json");
  assert.deepEqual(s.open().list(), []);
  assert.ok(s.logs.some((l) => l.includes("not read")));
});

const event = (over: Partial<MoatEvent>): MoatEvent =>
  ({
    time: "2026-12-01T10:00:00.000Z",
    type: "detected",
    verdict: "detected",
    mode: "detect",
    rule: "default",
    direction: "egress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "192.0.2.1", port: 443 },
    interface: "eth0",
    process: {
      pid: 9,
      name: "curl",
      path: "/usr/bin/curl",
      user: 1000,
      cgroup: "/",
      container: null,
    },
    layer7: null,
    connection: "1",
    reason: "new",
    hook: "connect",
    ...over,
  }) as MoatEvent;

test("the queue takes unknown connections: detected by the defaults, or silently blocked", () => {
  const detect = policy("detect");
  const prevent = policy("prevent");
  const silent = policy("prevent", "review: { silent_block: true }\n");
  assert.equal(queuesEvent(event({}), detect), true);
  assert.equal(queuesEvent(event({ rule: "no-db" }), detect), false, "a rule decided it");
  const blocked = event({ type: "blocked", verdict: "blocked", mode: "prevent" });
  assert.equal(queuesEvent(blocked, prevent), false, "prevent without silent_block");
  assert.equal(queuesEvent(blocked, silent), true);
  assert.equal(queuesEvent(event({ type: "closed" }), detect), false);
  assert.equal(queuesEvent(event({ reason: "rejudged" }), detect), false);
});

test("one entry per identity and destination, counting repeats; bounded, overflow counted", () => {
  const q = new ReviewQueue();
  const a = q.add(event({}));
  const again = q.add(
    event({ local: { ip: "10.0.0.1", port: 40001 }, time: "2026-12-01T10:01:00.000Z" }),
  );
  assert.equal(again?.id, a?.id);
  assert.equal(again?.count, 2);
  assert.equal(again?.last, "2026-12-01T10:01:00.000Z");
  const other = q.add(event({ process: null }));
  assert.notEqual(other?.id, a?.id, "another identity is another entry");
  assert.equal(a?.port, 443);
  for (let i = 0; q.view().entries.length < MAX_REVIEW; i++)
    q.add(
      event({ remote: { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 80 } }),
    );
  assert.equal(q.add(event({ remote: { ip: "192.0.2.200", port: 1 } })), null);
  assert.equal(q.view().overflow, 1);
  q.remove(a?.id ?? "");
  assert.equal(q.get(a?.id ?? ""), undefined);
});

test("a decision the datapath cannot enforce here refuses the policy with it, saying why", () => {
  const text = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: block }\n";
  const accept = (decisions: LocalDecision[]) =>
    acceptPolicyText(text, "p.yaml", { host: textOnlyHost, decisions });
  const byAddress = accept([decision({})]);
  assert.ok(byAddress.policy, "an address decision compiles");
  assert.equal(byAddress.policy.model.decisions?.length, 1);
  const byName = accept([decision({ remote: "api.example.org", direction: "ingress" })]);
  assert.equal(byName.policy, undefined);
  const errors = byName.diagnostics.filter((d) => d.severity === "error");
  assert.ok(errors.length > 0);
  assert.ok(
    errors.every((d) => d.file === "(local decisions)" && d.path.startsWith("decisions.d1")),
    JSON.stringify(errors),
  );
});

/**
 * The rule the kernel's socket tables give curl run by `uid` connecting to 192.0.2.5:80, under
 * one decision for curl (`user`: the user it names, if any).
 */
function kernelRuleForCurl(uid: number, user?: number): string | undefined {
  const curl = realpathSync("/usr/bin/curl");
  const process = user === undefined ? { path: curl } : { path: curl, user };
  const m = withDecisions(policy("prevent", "attach: { cgroup: / }\n"), [
    decision({ remote: "192.0.2.5", id: "curl", process }),
  ]);
  const img = compilePolicy(m, readProcessUniverse(m, new Attribution()));
  const socket = img.socket;
  assert.ok(socket?.process, "the decision's process is compiled");
  const id = fileIdentities([curl]).get(curl);
  assert.ok(id, "curl's identity");
  const cls = processClass(socket.process, { ...id, comm: "curl", uid, cgroupId: 1n });
  const rule = lookupImage(socket.image, {
    direction: "egress",
    family: 4,
    protocol: 6,
    remote: Uint8Array.from([192, 0, 2, 5]),
    local: Uint8Array.from([10, 0, 0, 1]),
    serverPort: 80,
    clientPort: cls,
    icmpType: 0,
    icmpCode: 0,
  });
  return socket.image.rules[rule]?.name;
}

test("a decision for one executable reaches the kernel's tables: its connections are decided by it there too", () => {
  assert.equal(kernelRuleForCurl(0), "decision:curl");
});

test("a decision for one executable run by one user reaches the kernel's tables with its user", () => {
  assert.equal(kernelRuleForCurl(1000, 1000), "decision:curl");
  assert.equal(kernelRuleForCurl(0, 1000), "default", "root's curl is not decided by it");
});
