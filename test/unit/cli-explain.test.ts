// `moat explain` as a user runs it: the verdict, the deciding rule, the mode and the reason.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function moat(...args: string[]): { code: number | null; stdout: string[]; stderr: string } {
  const run = spawnSync("bin/moat", args, { encoding: "utf8" });
  return { code: run.status, stdout: run.stdout.split("\n").filter(Boolean), stderr: run.stderr };
}

const SERVER = "examples/server.yaml";
const DEFAULTED = "ingress (default; --direction egress if the left side is this host)";

test("an inbound connection no rule allows: blocked by default", () => {
  const result = moat("explain", SERVER, "tcp", "203.0.113.9:51514", "->", "10.0.0.1:22");
  assert.equal(result.code, 3, "exit status 3: blocked");
  assert.deepEqual(result.stdout, [
    `connection: ${DEFAULTED} tcp 203.0.113.9:51514 -> 10.0.0.1:22 (remote -> local)`,
    "verdict: blocked",
    "action: block",
    "rule: default",
    "mode: prevent",
    "reason: no rule matched; defaults.ingress = block",
  ]);
});

test("IPv6 with brackets, an allowing rule from a set", () => {
  const result = moat("explain", SERVER, "tcp", "[fd00::9]:50000", "->", "[fd00::1]:22");
  assert.deepEqual(result.stdout, [
    `connection: ${DEFAULTED} tcp [fd00::9]:50000 -> [fd00::1]:22 (remote -> local)`,
    "verdict: allowed",
    "action: allow",
    "rule: ssh-from-admins",
    "mode: prevent",
    "reason: rule ssh-from-admins (line 17): remote fd00::9 in set:admins, tcp port 22",
  ]);
});

test("icmp with type and code; 'to' instead of the arrow", () => {
  const result = moat(
    "explain",
    SERVER,
    "icmp",
    "10.0.0.2",
    "to",
    "10.0.0.1",
    "type",
    "8",
    "code",
    "0",
  );
  assert.deepEqual(result.stdout.slice(1), [
    "verdict: allowed",
    "action: allow",
    "rule: ping",
    "mode: prevent",
    "reason: rule ping (line 31): icmp type 8 code 0",
  ]);
});

test("--direction egress: the left side is this host; detect mode reports without dropping", () => {
  const result = moat(
    "explain",
    "examples/default.yaml",
    "udp",
    "10.0.0.5:40000",
    "->",
    "203.0.113.7:5000",
    "--direction",
    "egress",
  );
  assert.deepEqual(result.stdout, [
    "connection: egress udp 10.0.0.5:40000 -> 203.0.113.7:5000 (local -> remote)",
    "verdict: detected",
    "action: block",
    "rule: default",
    "mode: detect",
    "reason: no rule matched; defaults.egress = block; detect mode: reported, not dropped",
  ]);
});

test("a rule the packet facts cannot decide: deferred, with the possible outcomes", () => {
  const result = moat(
    "explain",
    "test/fixtures/policies/full.yaml",
    "tcp",
    "10.0.0.5:40000",
    "->",
    "203.0.113.7:443",
    "--direction",
    "egress",
  );
  assert.deepEqual(result.stdout, [
    "connection: egress tcp 10.0.0.5:40000 -> 203.0.113.7:443 (local -> remote)",
    "verdict: deferred",
    "rule: curl-only",
    "needs: process, interface, layer7, DNS names of the remote address",
    "reason: cannot decide without process, interface, layer7, DNS names of the remote address: rule curl-only (line 34), no-tracker (line 63) may match; allowed by curl-only, else blocked by no-tracker, else allowed by default",
    "possible: allowed by curl-only (rule curl-only (line 34): if process, interface, layer7 match)",
    "possible: blocked by no-tracker (rule no-tracker (line 63): if DNS names of the remote address match)",
    "possible: allowed by default (no rule matched; defaults.egress = allow)",
  ]);
});

test("--hop-limit: neighbour discovery with 255 is basic networking, unjudged", () => {
  const ns = ["icmpv6", "fe80::2", "->", "fe80::1", "type", "135"];
  const result = moat(
    "explain",
    "test/fixtures/policies/block-all.yaml",
    ...ns,
    "--hop-limit",
    "255",
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout.slice(1), [
    "verdict: allowed",
    "action: allow",
    "rule: (basic networking)",
    "mode: prevent",
    "reason: neighbour solicitation (icmpv6 type 135) with hop limit 255 is basic networking: it passes unjudged, as no rule names it",
  ]);
  const without = moat("explain", "test/fixtures/policies/block-all.yaml", ...ns);
  assert.equal(without.stdout[1], "verdict: blocked", "no hop limit given: judged");
  const bad = moat("explain", "test/fixtures/policies/block-all.yaml", ...ns, "--hop-limit", "300");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--hop-limit must be an integer 0-255, got '300'/);
});

test("mistakes get a usage message and exit 2", () => {
  const unquoted = moat("explain", SERVER, "tcp", "1.2.3.4:5", "-");
  assert.equal(unquoted.code, 2);
  assert.match(unquoted.stderr, /^moat: a lone '-': an unquoted -> in a shell is '-' plus a '>'/);
  const noPort = moat("explain", SERVER, "tcp", "1.2.3.4", "->", "10.0.0.1:22");
  assert.equal(noPort.code, 2);
  assert.match(noPort.stderr, /^moat: the client '1.2.3.4' needs a port \(tcp has ports\)\n/);
  const badDirection = moat(
    "explain",
    SERVER,
    "tcp",
    "1.2.3.4:5",
    "->",
    "10.0.0.1:22",
    "--direction",
    "in",
  );
  assert.equal(badDirection.stderr, "moat: --direction must be ingress or egress, got 'in'\n");
});

test("a policy with errors is not explained: the errors are shown, exit 1", () => {
  const result = moat(
    "explain",
    "test/fixtures/policies/schema-errors.yaml",
    "tcp",
    "1.2.3.4:5",
    "->",
    "10.0.0.1:22",
  );
  assert.equal(result.code, 1);
  const lines = result.stderr.trim().split("\n");
  assert.equal(
    lines[0],
    "test/fixtures/policies/schema-errors.yaml:1:10 version: must be 1, got 2",
  );
  assert.equal(
    lines.at(-1),
    "test/fixtures/policies/schema-errors.yaml: the policy has errors; run 'moat check test/fixtures/policies/schema-errors.yaml'",
  );
});

const NAMES = "test/fixtures/policies/names-ok.yaml";
const HTTPS = ["tcp", "10.0.0.5:40000", "->", "203.0.113.5:443", "--direction", "egress"];

test("--name: the remote address's names for this process decide hostname entries", () => {
  const result = moat(
    "explain",
    NAMES,
    ...HTTPS,
    "--name",
    "other.example",
    "--name",
    "X.cdn.example.",
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout, [
    "connection: egress tcp 10.0.0.5:40000 -> 203.0.113.5:443 (local -> remote)",
    "remote names: other.example, x.cdn.example",
    "verdict: allowed",
    "action: allow",
    "rule: api",
    "mode: prevent",
    "reason: rule api (line 15): remote 203.0.113.5 in *.cdn.example (DNS), tcp port 443",
  ]);
  const unknown = moat("explain", NAMES, ...HTTPS);
  assert.deepEqual(unknown.stdout.slice(1, 4), [
    "verdict: deferred",
    "rule: api",
    "needs: DNS names of the remote address",
  ]);
  const other = moat("explain", NAMES, ...HTTPS, "--name", "api.example.org.evil.example");
  assert.deepEqual(other.stdout.slice(2, 5), [
    "verdict: blocked",
    "action: block",
    "rule: default",
  ]);
});

test("--dns-query: a DNS query for NAME, egress udp to port 53 unless said", () => {
  const result = moat(
    "explain",
    NAMES,
    "10.0.0.5:40000",
    "->",
    "9.9.9.9",
    "--dns-query",
    "x.ads.example",
  );
  assert.equal(result.code, 3, result.stderr);
  assert.deepEqual(result.stdout, [
    "connection: egress udp 10.0.0.5:40000 -> 9.9.9.9:53 (local -> remote)",
    "dns query: x.ads.example",
    "verdict: blocked",
    "action: block",
    "rule: no-ads-lookups",
    "mode: prevent",
    "reason: rule no-ads-lookups (line 7): dns query x.ads.example",
  ]);
  const tcp = moat(
    "explain",
    NAMES,
    "tcp",
    "10.0.0.5:40000",
    "to",
    "9.9.9.9:53",
    "--dns-query",
    "ads.example",
  );
  assert.deepEqual(tcp.stdout, [
    "connection: egress tcp 10.0.0.5:40000 -> 9.9.9.9:53 (local -> remote)",
    "dns query: ads.example",
    "verdict: allowed",
    "action: allow",
    "rule: lookups",
    "mode: prevent",
    "reason: rule lookups (line 11): tcp port 53",
  ]);
  // without the name, the DNS rule cannot decide: the proxy will know it
  const unknown = moat(
    "explain",
    NAMES,
    "udp",
    "10.0.0.5:40000",
    "->",
    "9.9.9.9:53",
    "--direction",
    "egress",
  );
  assert.deepEqual(unknown.stdout.slice(1, 4), [
    "verdict: deferred",
    "rule: no-ads-lookups",
    "needs: DNS query name",
  ]);
});

test("--name and --dns-query mistakes are usage errors", () => {
  const cases: [string[], RegExp][] = [
    [[...HTTPS, "--name", "*.cdn.example"], /--name: '\*\.cdn\.example' is a pattern; give a name/],
    [[...HTTPS, "--name", "not a name"], /--name: 'not a name' is not a valid hostname/],
    [
      ["tcp", "203.0.113.5:40000", "->", "10.0.0.5:443", "--name", "api.example.org"],
      /--name: names are learned for the addresses this host connects to \(--direction egress\)/,
    ],
    [
      ["10.0.0.5:40000", "->", "9.9.9.9:853", "--dns-query", "x.example"],
      /--dns-query: moat's DNS proxy judges queries sent to port 53 over udp or tcp, not udp port 853/,
    ],
    [
      ["10.0.0.5:40000", "->", "9.9.9.9", "--dns-query", "x.example", "--direction", "ingress"],
      /--dns-query: the queries moat judges are the ones this host sends \(--direction egress\)/,
    ],
  ];
  for (const [args, message] of cases) {
    const result = moat("explain", NAMES, ...args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, message);
  }
});

test("exit status by verdict: 0 allowed, 3 blocked, 4 detected, 5 deferred", () => {
  const allowed = moat("explain", SERVER, "tcp", "[fd00::9]:50000", "->", "[fd00::1]:22");
  assert.equal(allowed.code, 0);
  const blocked = moat("explain", SERVER, "tcp", "203.0.113.9:51514", "->", "10.0.0.1:22");
  assert.equal(blocked.code, 3);
  const detected = moat(
    "explain",
    "examples/default.yaml",
    "tcp",
    "203.0.113.9:1",
    "->",
    "10.0.0.1:2222",
  );
  assert.equal(detected.stdout[1], "verdict: detected");
  assert.equal(detected.code, 4);
  const deferred = moat("explain", NAMES, ...HTTPS);
  assert.equal(deferred.stdout[1], "verdict: deferred");
  assert.equal(deferred.code, 5);
  const broken = moat(
    "explain",
    "test/fixtures/policies/schema-errors.yaml",
    "tcp",
    "1.2.3.4:1",
    "->",
    "10.0.0.1:22",
  );
  assert.equal(broken.code, 1, "a policy with errors: 1, not a verdict");
});

test("--json: one object with the facts and the evaluation; the exit status is the verdict's", () => {
  const result = moat("explain", SERVER, "tcp", "203.0.113.9:51514", "->", "10.0.0.1:22", "--json");
  assert.equal(result.code, 3);
  assert.equal(result.stdout.length, 1);
  const parsed = JSON.parse(result.stdout[0] ?? "") as Record<string, unknown>;
  assert.deepEqual(
    { verdict: parsed.verdict, action: parsed.action, rule: parsed.rule, mode: parsed.mode },
    { verdict: "blocked", action: "block", rule: "default", mode: "prevent" },
  );
  assert.deepEqual(parsed.facts, {
    direction: "ingress",
    protocol: "tcp",
    family: 4,
    local: { ip: "10.0.0.1", port: 22 },
    remote: { ip: "203.0.113.9", port: 51514 },
  });
  const deferred = moat("explain", NAMES, ...HTTPS, "--json");
  const d = JSON.parse(deferred.stdout[0] ?? "") as { verdict: string; needs: string[] };
  assert.equal(d.verdict, "deferred");
  assert.deepEqual(d.needs, ["DNS names of the remote address"]);
});

test("--decisions FILE: a local decision decides before the file's rules, named decision:<id>", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-explain-decisions-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "decisions.json");
  const decision = {
    id: "a1b2c3d4",
    action: "allow",
    direction: "ingress",
    remote: "203.0.113.9",
    protocol: "tcp",
    port: 22,
    lifetime: "forever",
    created: "2026-12-01T00:00:00.000Z",
    by: "unix uid 0 pid 42",
  };
  writeFileSync(file, JSON.stringify({ version: 1, decisions: [decision] }));
  const args = ["explain", SERVER, "tcp", "203.0.113.9:51514", "->", "10.0.0.1:22"];
  const result = moat(...args, "--decisions", file);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout.slice(1), [
    "verdict: allowed",
    "action: allow",
    "rule: decision:a1b2c3d4",
    "mode: prevent",
    "reason: local decision a1b2c3d4 (decision:a1b2c3d4; forever; by unix uid 0 pid 42): remote 203.0.113.9 in 203.0.113.9, tcp port 22",
  ]);
  // an expired one is left out: the file's policy decides again
  const expired = { ...decision, lifetime: "1h", expires: "2026-12-01T01:00:00.000Z" };
  writeFileSync(file, JSON.stringify({ version: 1, decisions: [expired] }));
  assert.equal(moat(...args, "--decisions", file).code, 3);
  assert.equal(moat(...args, "--decisions", "none").code, 3);
});

test("--decisions FILE: a decision for a program run by one user decides that user's connections only", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-explain-decisions-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "decisions.json");
  const decision = {
    id: "c0ffee01",
    action: "block",
    direction: "egress",
    remote: "203.0.113.9",
    protocol: "tcp",
    port: 443,
    process: { path: "/usr/bin/curl", user: 1000 },
    lifetime: "forever",
    created: "2026-12-01T00:00:00.000Z",
    by: "unix uid 0 pid 42",
  };
  writeFileSync(file, JSON.stringify({ version: 1, decisions: [decision] }));
  const ruleFor = (user: string) => {
    const result = moat(
      ...["explain", SERVER, "--direction", "egress", "tcp", "10.0.0.1:40000", "->"],
      ...["203.0.113.9:443", "--process", `path=/usr/bin/curl,user=${user}`],
      ...["--decisions", file, "--json"],
    );
    return (JSON.parse(result.stdout[0] ?? "{}") as { rule?: string }).rule;
  };
  assert.equal(ruleFor("1000"), "decision:c0ffee01");
  assert.equal(ruleFor("0"), "default", "root's curl is another user's");
});
