// `moat check` as a user runs it: exact lines, summary, exit code.

import { readdirSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

function moat(...args: string[]): { code: number | null; stdout: string[]; stderr: string } {
  const run = spawnSync("bin/moat", args, { encoding: "utf8" });
  return { code: run.status, stdout: run.stdout.split("\n").filter(Boolean), stderr: run.stderr };
}

const F = "test/fixtures/policies";

test("every example policy passes: exit 0, one summary line, nothing else", () => {
  const expected: Record<string, string> = {
    "examples/default.yaml": "examples/default.yaml: ok, 5 rules, 0 sets",
    "examples/server.yaml": "examples/server.yaml: ok, 8 rules, 2 sets",
    "examples/workstation.yaml": "examples/workstation.yaml: ok, 17 rules, 6 sets",
    "examples/flood.yaml": "examples/flood.yaml: ok, 3 rules, 0 sets",
    "examples/l7.yaml": "examples/l7.yaml: ok, 6 rules, 0 sets",
    "examples/rate-limits.yaml": "examples/rate-limits.yaml: ok, 3 rules, 0 sets",
    "examples/ids.yaml": "examples/ids.yaml: ok, 0 rules, 0 sets, 3 ids signatures",
  };
  // a new example joins this list with its summary
  const examples = readdirSync("examples").filter((f) => f.endsWith(".yaml"));
  assert.deepEqual(
    examples.map((f) => `examples/${f}`).sort(),
    Object.keys(expected).sort(),
    "every example is checked",
  );
  for (const [file, summary] of Object.entries(expected)) {
    const result = moat("check", file);
    assert.deepEqual(result.stdout, [summary], file);
    assert.equal(result.code, 0, file);
  }
});

test("errors: every one printed as FILE:LINE:COL path: message, a count, exit 1", () => {
  const result = moat("check", `${F}/schema-errors.yaml`);
  assert.equal(result.code, 1);
  assert.deepEqual(result.stdout, [
    `${F}/schema-errors.yaml:1:10 version: must be 1, got 2`,
    `${F}/schema-errors.yaml:2:7 mode: must be one of detect, prevent, got 'block'`,
    `${F}/schema-errors.yaml:3:22 defaults.ingress: must be one of allow, block, got 'drop'`,
    `${F}/schema-errors.yaml:5:22 sets.corp[1]: must be an address or a port, got true`,
    `${F}/schema-errors.yaml:7:11 rules[0].name: must be lowercase letters, digits and '-', starting with a letter or digit, got 'Bad_Name'`,
    `${F}/schema-errors.yaml:8:16 rules[0].direction: must be one of ingress, egress, any, got 'in'`,
    `${F}/schema-errors.yaml:11:17 rules[0].layer4.protocol: must be one of tcp, udp, icmp, icmpv6, any, or a protocol number 0-255, got 'tcpp'`,
    `${F}/schema-errors.yaml:12:13 rules[0].layer4.port: must be a list, got 22 (write [22] for a single entry)`,
    `${F}/schema-errors.yaml:13:7 rules[0].layer4.prot: unknown property 'prot' (did you mean 'port'?)`,
    `${F}/schema-errors.yaml:14:5 rules[1].action: missing required property 'action'`,
    `${F}/schema-errors.yaml:16:22 rules[1].layer4.port[0]: must be <= 65535, got 70000`,
    `${F}/schema-errors.yaml:18:10 logging.audit: must be a mapping, got '/var/log/moat.log'`,
    `${F}/schema-errors.yaml: 12 errors`,
  ]);
});

test("errors in a set file name the set file's own line", () => {
  const result = moat("check", `${F}/semantic-errors.yaml`);
  assert.equal(result.code, 1);
  assert.deepEqual(result.stdout.slice(-3), [
    // a set file's lines are never quoted: the position says where, the message what
    `${F}/lists/bad.txt:3:3 sets.bad: not an IP address, CIDR, "a-b" range or hostname (set-file lines are not quoted)`,
    `${F}/lists/bad.txt:4:1 sets.bad: not an IP address, CIDR, "a-b" range or hostname (set-file lines are not quoted)`,
    `${F}/semantic-errors.yaml: 17 errors, 1 warning`,
  ]);
});

test("warnings: unreachable rules; the file is still ok (exit 0)", () => {
  const result = moat("check", `${F}/shadowed.yaml`);
  assert.equal(result.code, 0);
  assert.deepEqual(result.stdout, [
    `${F}/shadowed.yaml:11:5 rules[1]: warning: rule 'corp-ssh' can never match: rule 'corp-anything' (earlier, line 7) matches everything it matches`,
    `${F}/shadowed.yaml:20:5 rules[3]: warning: rule 'https' can never match: rule 'web' (earlier, line 16) matches everything it matches`,
    `${F}/shadowed.yaml:32:5 rules[6]: warning: rule 'outside' can never match: rule 'not-corp' (earlier, line 28) matches everything it matches`,
    `${F}/shadowed.yaml: ok, 7 rules, 1 set, 3 warnings`,
  ]);
});

test("warnings: an allow rule that names a process only by name (any process can take it)", () => {
  const result = moat("check", `${F}/name-only.yaml`);
  assert.equal(result.code, 0);
  assert.deepEqual(result.stdout, [
    `${F}/name-only.yaml:9:14 rules[0].process: warning: rule 'curl-by-name' allows by process name only, which any process can take (prctl PR_SET_NAME, exec -a); add path or user to know it is curl`,
    `${F}/name-only.yaml: ok, 4 rules, 0 sets, 1 warning`,
  ]);
});

test("features the daemon would refuse are errors in check, as the daemon reports them", () => {
  const result = moat("check", `${F}/full.yaml`);
  assert.equal(result.code, 1);
  assert.deepEqual(result.stdout, [
    `${F}/full.yaml:47:7 rules[2].layer7: rule 'curl-only': layer7.dns with layer7.http in one rule: DNS queries and relayed connections are judged apart; write them as rules of their own`,
    `${F}/full.yaml:67:15 rules[3].layer3.remote: warning: rule 'no-tracker' blocks by name: it blocks only the addresses a DNS answer gave to the same process (executable, user, cgroup); an address reached without that lookup (written in a program, cached, looked up by another process) is not blocked; to refuse the lookup itself, use layer7: { dns: { name: [...] } }`,
    `${F}/full.yaml:67:15 rules[3].layer3.remote: rule 'no-tracker': this list has hostname '*.tracker.example' and exclusion '!10.0.0.0/8': names and addresses are matched apart, so a list with names cannot have '!' entries; write the names and the addresses in rules of their own`,
    `${F}/full.yaml: 2 errors, 1 warning`,
  ]);
});

test("several files: one summary each; exit 1 if any has errors", () => {
  const result = moat("check", "examples/server.yaml", `${F}/no-such.yaml`);
  assert.equal(result.code, 1);
  assert.deepEqual(result.stdout, [
    "examples/server.yaml: ok, 8 rules, 2 sets",
    `${F}/no-such.yaml:1:1 (file): cannot read policy file: no such file or directory`,
    `${F}/no-such.yaml: 1 error`,
  ]);
});

test("no file: usage error, exit 2", () => {
  const result = moat("check");
  assert.equal(result.code, 2);
  assert.equal(result.stderr, "moat: no policy file given\nusage: moat check [--json] FILE...\n");
});

test("names: a hostname rule refused as the daemon refuses it; a block by name warns", () => {
  const result = moat("check", `${F}/names.yaml`);
  assert.equal(result.code, 1);
  assert.deepEqual(result.stdout, [
    `${F}/names.yaml:10:15 rules[0].layer3.remote: warning: rule 'no-ads' blocks by name: it blocks only the addresses a DNS answer gave to the same process (executable, user, cgroup); an address reached without that lookup (written in a program, cached, looked up by another process) is not blocked; to refuse the lookup itself, use layer7: { dns: { name: [...] } }`,
    `${F}/names.yaml:14:24 rules[1].layer3.remote[0]: rule 'from-names': hostname 'api.example.org' in a rule that is not 'direction: egress': names are learned from this host's own lookups, for the connections it opens`,
    `${F}/names.yaml:19:12 rules[2].layer7.dns: rule 'no-dot-names': 'name' with 'over_tls: true': moat cannot see the names inside DNS over TLS; write a rule for DNS over TLS without 'name' (or by its server, in layer3.remote)`,
    `${F}/names.yaml: 2 errors, 1 warning`,
  ]);
});
