// Policy values whose meaning was unclear are given one meaning, documented, and reported:
// an empty list in a rule, IPv4-mapped IPv6 entries, icmp written as a number, uids past 32 bits,
// durations past the kernel's field, and user names this host does not know.
import { test } from "node:test";
import assert from "node:assert/strict";
import { acceptPolicy } from "../../src/host/accept-policy.ts";
import { formatDiagnostic } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";

function accept(text: string) {
  const r = acceptPolicy(text, "/p.yaml");
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const header = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: block }\nrules:\n";

const inbound = (protocol: "tcp" | "udp", port: number): ConnectionFacts => ({
  direction: "ingress",
  protocol,
  family: 4,
  local: { ip: "10.0.0.1", port },
  remote: { ip: "203.0.113.9", port: 51514 },
});

test("an empty list in a rule matches nothing, for ports and addresses alike, with a warning", () => {
  const r = accept(
    header +
      "  - { name: no-ports, direction: ingress, action: allow, layer4: { protocol: tcp, port: [] } }\n" +
      "  - { name: no-remotes, direction: ingress, action: allow, layer3: { remote: [] }, layer4: { protocol: udp } }\n",
  );
  assert.ok(r.policy, r.lines.join("\n"));
  assert.deepEqual(r.lines, [
    "/p.yaml:5:89 rules[0].layer4.port: warning: an empty list matches nothing, so this rule never matches (leave 'port' out to match any)",
    "/p.yaml:6:78 rules[1].layer3.remote: warning: an empty list matches nothing, so this rule never matches (leave 'remote' out to match any)",
  ]);
  const { model } = r.policy;
  assert.equal(evaluate(model, inbound("tcp", 22)).rule, "default");
  assert.equal(evaluate(model, inbound("udp", 53)).rule, "default");
});

test("an IPv4-mapped IPv6 entry gets a warning: such addresses are judged as IPv4", () => {
  const r = accept(
    header +
      '  - { name: mapped, direction: egress, action: allow, layer3: { remote: ["::ffff:192.0.2.1"] } }\n',
  );
  assert.deepEqual(r.lines, [
    "/p.yaml:5:74 rules[0].layer3.remote[0]: warning: '::ffff:192.0.2.1' is an IPv4-mapped IPv6 address: moat judges connections to such addresses as IPv4, so this entry never matches; write the IPv4 address (192.0.2.1)",
  ]);
});

test("icmp written as a protocol number gets a warning naming it", () => {
  const r = accept(
    header +
      "  - { name: ping, direction: ingress, action: allow, layer4: { protocol: 1, icmp: { type: 8 } } }\n" +
      "  - { name: ping6, direction: ingress, action: allow, layer4: { protocol: 58 } }\n",
  );
  assert.deepEqual(r.lines, [
    "/p.yaml:5:74 rules[0].layer4.protocol: warning: protocol 1 is icmp (IPv4 only): write 'icmp'; ICMP over IPv6 is 'icmpv6' (58)",
    "/p.yaml:6:75 rules[1].layer4.protocol: warning: protocol 58 is icmpv6 (IPv6 only): write 'icmpv6'; ICMP over IPv4 is 'icmp' (1)",
  ]);
});

test("a uid past 32 bits is an error", () => {
  const big = accept(
    "version: 1\nmode: prevent\nattach: { cgroup: / }\nrules:\n" +
      "  - { name: u, direction: egress, action: allow, process: { user: [4294967296] } }\n",
  );
  assert.ok(!big.policy, big.lines.join("\n"));
  assert.deepEqual(big.lines, [
    "/p.yaml:5:68 rules[0].process.user[0]: a uid is at most 4294967294, got 4294967296",
  ]);
});

test("a max_duration past the kernel's 32-bit seconds field is an error", () => {
  const r = accept(
    header +
      "  - { name: d, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22], max_duration: 5000000000s } }\n",
  );
  assert.ok(!r.policy, r.lines.join("\n"));
  assert.deepEqual(r.lines, [
    "/p.yaml:5:102 rules[0].layer4.max_duration: '5000000000s' is longer than moat can hold (at most 4294967295 seconds, about 136 years)",
  ]);
});

test("a user name this host does not know gets a warning", () => {
  const r = accept(
    "version: 1\nmode: prevent\nattach: { cgroup: / }\nrules:\n" +
      "  - { name: u, direction: egress, action: allow, process: { user: [root, no-such-user-moat] } }\n",
  );
  assert.ok(r.policy, r.lines.join("\n"));
  assert.deepEqual(r.lines, [
    "/p.yaml:5:59 rules[0].process.user: warning: user 'no-such-user-moat' is not in /etc/passwd: the rule matches no process of that user until it is added",
  ]);
});

test("the dns section: defaults when absent, resolvers normalised, durations in seconds", () => {
  const none = accept("version: 1\nmode: prevent\n");
  assert.deepEqual(none.policy?.model.dns, {
    resolvers: [],
    minTtlSeconds: 5,
    graceSeconds: 30,
    doh: "allow",
    ech: "keep",
  });
  const r = accept(
    "version: 1\nmode: prevent\n" +
      'dns: { resolvers: [10.0.0.53, "2001:DB8:0:0::53", "::ffff:192.0.2.53"], min_ttl: 1m, grace: 0s }\n',
  );
  assert.ok(r.policy, r.lines.join("\n"));
  const { pos, ...dns } = r.policy.model.dns;
  assert.deepEqual(dns, {
    resolvers: ["10.0.0.53", "2001:db8::53", "192.0.2.53"],
    minTtlSeconds: 60,
    graceSeconds: 0,
    doh: "allow",
    ech: "keep",
  });
  assert.deepEqual([pos?.line, pos?.col, pos?.path], [3, 6, "dns"]);
  // with no rule naming a host, the section does nothing: say so
  assert.deepEqual(r.lines, [
    "/p.yaml:3:6 dns: warning: the dns section has no effect: no rule names a host (hostname entries in layer3.remote, or layer7.dns.name)",
  ]);
  assert.equal(
    accept("version: 1\ndns: { min_ttl: 0, grace: 45 }\n").policy?.model.dns.graceSeconds,
    45,
  );
});

test("the dns section: a bad resolver or duration is an error where it is written", () => {
  const r = accept(
    "version: 1\nmode: prevent\n" +
      "dns:\n" +
      "  resolvers: [10.0.0.0/8, dns.example.org, 10.0.0.53, 10.0.0.53]\n" +
      "  min_ttl: 2d\n" +
      "  grace: soon\n" +
      "  ttl: 5s\n",
  );
  assert.ok(!r.policy);
  assert.deepEqual(r.lines, [
    "/p.yaml:4:15 dns.resolvers[0]: '10.0.0.0/8' is a network: name each resolver by its IP address",
    "/p.yaml:4:27 dns.resolvers[1]: 'dns.example.org' is not an IPv4 address (expected 4 parts a.b.c.d): a resolver is named by its IP address",
    "/p.yaml:4:55 dns.resolvers[3]: warning: resolver 10.0.0.53 is listed twice",
    "/p.yaml:5:12 dns.min_ttl: '2d' is longer than a day: a name's addresses held that long outlive most DNS changes (at most 1d)",
    "/p.yaml:6:10 dns.grace: 'soon' is not a duration (write e.g. 90s, 30m, 8h, 1d or 1h30m)",
    "/p.yaml:7:3 dns.ttl: unknown property 'ttl' (expected one of: resolvers, min_ttl, grace, doh, doh_list, ech)",
  ]);
  const typed = accept("version: 1\nmode: detect\ndns: { resolvers: 10.0.0.53, min_ttl: -1 }\n");
  assert.deepEqual(typed.lines, [
    "/p.yaml:3:19 dns.resolvers: must be a list, got '10.0.0.53' (write [10.0.0.53] for a single entry)",
    "/p.yaml:3:39 dns.min_ttl: must be >= 0, got -1",
  ]);
});
