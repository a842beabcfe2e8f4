// moat suggest: what a learnt rule may say and may not widen. Identities whose path, name or
// container holds a glob character are not proposed; a container name that looks like an id stays
// a name; peers are generalised only with peers on the same ports; a process is never dropped from
// a rule; promotion counts only days after the rule was proposed; odd characters are escaped in
// the diff; a peer known by name is undecided where a rule turns on its address.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { acceptPolicy, nodeHost } from "../../src/host/index.ts";
import { evaluate } from "../../src/policy/evaluator.ts";
import {
  promotePolicy,
  suggestPolicy,
  type IdentityDay,
  type LearnRow,
} from "../../src/observe/learn/index.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import type { ConnectionFacts, KnownProcess } from "../../src/policy/facts.ts";

const POLICY = readFileSync(join(import.meta.dirname, "../fixtures/suggest/policy.yaml"), "utf8");
const NOW = Date.parse("2026-11-30T12:00:00Z");
const DAY = 86_400_000;

function model(text: string): PolicyModel {
  const { diagnostics, policy } = acceptPolicy(text, "/etc/moat/policy.yaml", { host: nodeHost });
  const errors = diagnostics.filter((d) => d.severity === "error");
  assert.deepEqual(errors, [], "the policy is accepted");
  return policy!.model;
}

const row = (p: Partial<LearnRow>): LearnRow => ({
  exe: "/usr/bin/curl",
  nameOnly: false,
  user: 1000,
  container: "",
  peer: "api.example.org",
  port: 443,
  protocol: "tcp",
  direction: "egress",
  connections: 10,
  allowed: 0,
  blocked: 0,
  detected: 10,
  firstMs: NOW - 7 * DAY,
  lastMs: NOW - DAY,
  processes: 1,
  ...p,
});

function suggest(rows: LearnRow[], text = POLICY, now = NOW) {
  const s = suggestPolicy(
    { text, model: model(text), fileName: "policy.yaml", now, since: now - 7 * DAY },
    { rows, overflow: { rows: 0, connections: 0, rolledUp: 0 }, resolution: "hour" },
  );
  return { s, after: model(s.text) };
}

const curl: KnownProcess = { name: "curl", path: "/usr/bin/curl", user: 1000, container: null };

const egress = (
  remote: { ip: string; names?: string[] },
  port: number,
  process: KnownProcess = curl,
): ConnectionFacts => ({
  direction: "egress",
  protocol: "tcp",
  family: 4,
  local: { ip: "10.0.0.2", port: 40000 },
  remote: { ...remote, port },
  process,
});

const suggested = (m: PolicyModel) => m.rules.filter((r) => r.name.startsWith("suggest-"));

test("suggest: an identity holding a glob character is not proposed, and spoils nothing else", () => {
  const odd = [
    row({ exe: "/tmp/x*" }),
    row({ exe: "/tmp/a?b" }),
    row({ exe: "*", nameOnly: true }),
    row({ exe: "a?b", nameOnly: true }),
    row({ container: "we?" }),
    row({ container: "web*" }),
  ];
  const { s, after } = suggest([row({ exe: "/usr/bin/wget" }), ...odd]);
  // the one plain identity is proposed; the suggested text is accepted (model() asserts it)
  assert.deepEqual(
    suggested(after).map((r) => r.process?.path),
    [["/usr/bin/wget"]],
  );
  assert.equal(s.notProposed.wildcard, odd.length * 10, "counted, with why");
  // no rule lets another executable through
  const other = { name: "xploit", path: "/tmp/xploit", user: 1000, container: null };
  const e = evaluate(after, egress({ ip: "0.0.0.0", names: ["api.example.org"] }, 443, other));
  assert.notEqual(e.verdict, "allowed");
});

test("suggest: a container name of hex digits stays a name; only a full id is an id", () => {
  const { after } = suggest([row({ container: "deadbeefcafe" })]);
  assert.deepEqual(suggested(after)[0]!.process?.container, { name: "deadbeefcafe" });
  const f = { ip: "0.0.0.0", names: ["api.example.org"] };
  const named = { ...curl, container: { name: "deadbeefcafe", id: "0".repeat(64), image: "x" } };
  const byId = { ...curl, container: { name: "evil", id: "deadbeefcafe".padEnd(64, "1") } };
  assert.equal(evaluate(after, egress(f, 443, named)).verdict, "allowed");
  assert.notEqual(evaluate(after, egress(f, 443, byId)).verdict, "allowed");
  // a container known by its id only (no name): the full id
  const id = "ab".repeat(32);
  const full = suggest([row({ container: id })]).after;
  assert.deepEqual(suggested(full)[0]!.process?.container, { id });
});

test("suggest: peers are generalised only with peers seen on the same ports", () => {
  const { s, after } = suggest([
    row({ peer: "a.example.com", port: 443 }),
    row({ peer: "b.example.com", port: 22 }),
    row({ peer: "c.example.com", port: 5432 }),
  ]);
  assert.ok(
    s.rules.every((r) => !r.remote.some((e) => e.includes("*"))),
    JSON.stringify(s.rules.map((r) => [r.remote, r.ports])),
  );
  const a = { ip: "0.0.0.0", names: ["a.example.com"] };
  assert.equal(evaluate(after, egress(a, 443)).verdict, "allowed");
  assert.notEqual(evaluate(after, egress(a, 22)).verdict, "allowed", "never seen on 22");
  // addresses alike: one /24 on mixed ports is not made the prefix
  const ips = Array.from({ length: 8 }, (_, i) =>
    row({ peer: `10.1.2.${i + 1}`, port: i === 0 ? 5432 : i === 1 ? 22 : 443 }),
  );
  const byIp = suggest(ips).s;
  assert.ok(byIp.rules.every((r) => !r.remote.includes("10.1.2.0/24")));
  // the same ports everywhere: widened as before
  const same = suggest(["a", "b", "c"].map((l) => row({ peer: `${l}.example.com` }))).s;
  assert.deepEqual(
    same.rules.map((r) => [r.remote, r.ports]),
    [[["*.example.com"], [443]]],
  );
});

test("suggest: a flow without ports of a process is not proposed without its process", () => {
  const { s, after } = suggest([row({ protocol: "icmp", port: 0, peer: "192.0.2.9" })]);
  // a rule cannot name a process for ICMP: not proposed (a rule without it would allow anyone)
  assert.equal(suggested(after).length, 0);
  assert.equal(s.notProposed.inexpressible, 10);
  // without a process (no socket hook saw it), a rule without `process` says exactly that
  const none = suggest([row({ exe: "", user: -1, protocol: "icmp", port: 0, peer: "192.0.2.9" })]);
  assert.equal(suggested(none.after).length, 1);
});

test("suggest --promote: only days after the rule was proposed count", () => {
  const allowing = POLICY.replace("egress: block # reported as detected", "egress: allow");
  const { s, after } = suggest([row({ allowed: 10, detected: 0 })], allowing);
  const days = (n: number, from: number): IdentityDay[] =>
    Array.from({ length: n }, (_, i) => ({
      exe: "/usr/bin/curl",
      nameOnly: false,
      user: 1000,
      container: "",
      dayMs: from - (from % DAY) - i * DAY,
      connections: 20,
      unclean: 0,
    }));
  const request = (text: string, m: PolicyModel, now: number) => ({
    text,
    model: m,
    fileName: "policy.yaml",
    now,
    since: now - 8 * DAY,
  });
  // at once: 8 clean days of history, none since the rules were added
  const atOnce = promotePolicy(request(s.text, after, NOW), days(8, NOW), "day");
  assert.ok(atOnce.promotions.length > 0);
  assert.ok(atOnce.promotions.every((p) => !p.promoted && p.cleanDays === 0));
  assert.deepEqual(atOnce.diff, []);
  // a week on: the 7 days after the suggestion's day count, its own day does not
  const later = NOW + 7 * DAY;
  const week = promotePolicy(request(s.text, after, later), days(15, later), "day");
  assert.ok(week.promotions.every((p) => p.promoted && p.cleanDays === 7));
  // a rule whose comment is gone: its age is unknown, it is not promoted
  const bare = s.text.replace(/^ *# moat suggest \d{4}-\d\d-\d\d:[^\n]*\n/gm, "");
  const unknown = promotePolicy(request(bare, model(bare), later), days(15, later), "day");
  assert.ok(unknown.promotions.length > 0);
  assert.ok(unknown.promotions.every((p) => !p.promoted && p.proposed === null));
});

test("suggest: C1 and bidi characters are escaped in the suggested text", () => {
  const exe = "/opt/a\u009b2J\u009d0;x\u0007b\u202ex";
  const { s, after } = suggest([row({ exe })]);
  /* eslint-disable no-control-regex -- it looks for control characters */
  const unprintable =
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;
  /* eslint-enable no-control-regex */
  const bad = s.diff.filter((l) => unprintable.test(l));
  assert.deepEqual(bad, []);
  // the value read back is the path itself
  assert.deepEqual(suggested(after)[0]!.process?.path, [exe]);
});

test("suggest: the invisible characters printable() escapes are escaped in the suggested text", () => {
  const exe = "/opt/a\u061cb\u00adc\u180ed\ufe0fe\ufff9f\u{e0001}g\u{e007f}h";
  const { s, after } = suggest([row({ exe })]);
  // eslint-disable-next-line no-misleading-character-class -- variation selectors alone
  const invisible = /[\u00ad\u061c\u180e\ufe00-\ufe0f\ufff9-\ufffb\u{e0000}-\u{e007f}]/u;
  assert.deepEqual(
    s.diff.filter((l) => invisible.test(l)),
    [],
  );
  // the value read back is the path itself
  assert.deepEqual(suggested(after)[0]!.process?.path, [exe]);
});

test("suggest: a peer known by name is undecided where a rule turns on the address", () => {
  const pol = POLICY.replace(
    "# the end of the rules",
    `  - name: block-not-internal
    direction: egress
    action: block
    layer3: { remote: ["!10.0.0.0/8"] }
    layer4: { protocol: tcp, port: [25] }
  - name: block-everywhere
    direction: egress
    action: block
    layer3: { remote: [0.0.0.0/0] }
    layer4: { protocol: tcp, port: [26] }
  - name: block-internal
    direction: egress
    action: block
    layer3: { remote: [10.0.0.0/8] }
    layer4: { protocol: tcp, port: [27] }
  - name: by-name
    direction: egress
    action: allow
    layer3: { remote: [mail.example.net] }
    layer4: { protocol: tcp, port: [28] }
# the end of the rules`,
  );
  const { s } = suggest(
    [25, 26, 27, 28, 29].map((port) => row({ peer: "mail.example.net", port })),
    pol,
  );
  assert.deepEqual(
    {
      undecided: s.notProposed.undecided,
      covered: s.notProposed.covered,
      ports: s.rules.map((r) => r.ports),
    },
    // !10.0.0.0/8 and 0.0.0.0/0 turn on the unknown address; 10.0.0.0/8 does not match a name
    { undecided: 20, covered: 10, ports: [[27, 29]] },
  );
});

test("suggest: a peer whose DNS name reads as a wildcard pattern is not proposed", () => {
  // a zone with a wildcard record answers the literal name `*.example.com` too: bound, it is
  // the peer's name, and as a rule's entry it would allow every name below example.com
  const { s, after } = suggest([
    row({ peer: "*.example.com" }),
    row({ peer: "**.example.net" }),
    row({ peer: "api.example.org" }),
  ]);
  assert.deepEqual(
    s.rules.map((r) => r.remote),
    [["api.example.org"]],
  );
  assert.equal(s.notProposed.inexpressible, 20);
  const other = { ip: "0.0.0.0", names: ["intranet.example.com"] };
  assert.notEqual(evaluate(after, egress(other, 443)).verdict, "allowed");
});

test("suggest: a path ending in Unicode white space is written whole", () => {
  // the trailing character is part of the executable's name: a rule without it names another file
  for (const exe of ["/tmp/curl\ufeff", "/tmp/curl\u00a0", "/tmp/curl\u2028", "curl\u3000"]) {
    const { after } = suggest([row({ exe, nameOnly: !exe.startsWith("/") })]);
    const p = suggested(after)[0]!.process;
    assert.deepEqual(p?.path ?? p?.name, [exe], JSON.stringify(exe));
  }
});
