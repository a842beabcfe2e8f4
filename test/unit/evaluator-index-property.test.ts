// The evaluator's indexes answer as its walks do: a long address list looked up by binary search
// gives the walk's outcome (the same first entry, the same "maybe"), and the rules a connection
// is matched against leave out only rules that cannot match it, in policy order.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseIp, type IpAddress } from "../../src/config/ip.ts";
import type { AddressEntry, Rule } from "../../src/config/model.ts";
import { nodeHost } from "../../src/host/policy-files.ts";
import { checkPolicySource } from "../../src/config/parse.ts";
import { prepareFacts, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import { matchAddressList } from "../../src/policy/match-address.ts";
import { matchRule } from "../../src/policy/match-rule.ts";
import { candidateRules } from "../../src/policy/rule-candidates.ts";

const pos = { file: "p.yaml", line: 1, col: 1, path: "rules" };

function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  assert.ok(parsed.ok);
  return parsed.value;
}

/** Intervals inside 10.0.0.0/26 and 2001:db8::/122, so that they overlap and nest. */
const interval: fc.Arbitrary<AddressEntry> = fc
  .record({
    v6: fc.boolean(),
    a: fc.nat(63),
    b: fc.nat(63),
    negate: fc.boolean(),
  })
  .map(({ v6, a, b, negate }) => {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const base = ip(v6 ? "2001:db8::" : "10.0.0.0").value;
    const text = `${v6 ? "2001:db8::" : "10.0.0."}${lo}-${hi}`;
    return {
      kind: "interval",
      family: v6 ? 6 : 4,
      start: base + BigInt(lo),
      end: base + BigInt(hi),
      text: `${negate ? "!" : ""}${text}`,
      negate,
      pos,
    };
  });

const hostname: fc.Arbitrary<AddressEntry> = fc
  .record({ name: fc.constantFrom("a.example.org", "x.test"), negate: fc.boolean() })
  .map(({ name, negate }) => ({
    kind: "hostname",
    name,
    wildcard: null,
    text: `${negate ? "!" : ""}${name}`,
    negate,
    pos,
  }));

const set: fc.Arbitrary<AddressEntry> = fc
  .record({ entries: fc.array(interval, { maxLength: 40 }), negate: fc.boolean() })
  .map(({ entries, negate }) => ({
    kind: "set",
    set: "s",
    entries: entries.filter((e) => !e.negate),
    text: `${negate ? "!" : ""}set:s`,
    negate,
    pos,
  }));

const entry = fc.oneof(
  { arbitrary: interval, weight: 12 },
  { arbitrary: hostname, weight: 1 },
  { arbitrary: set, weight: 1 },
);

const address = fc.record({
  v6: fc.boolean(),
  at: fc.nat(70),
  names: fc.option(fc.subarray(["a.example.org", "x.test"]), { nil: undefined }),
});

test("a long address list's index gives the walk's outcome", () => {
  fc.assert(
    fc.property(
      fc.array(entry, { minLength: 1, maxLength: 120 }),
      fc.array(address, { minLength: 10, maxLength: 10 }),
      (entries, asked) => {
        const list = { entries, pos };
        for (const a of asked) {
          const text = `${a.v6 ? "2001:db8::" : "10.0.0."}${a.at}`;
          const facts = { address: ip(text), text, ...(a.names ? { names: a.names } : {}) };
          const walked = matchAddressList(list, "remote", facts, Infinity);
          assert.deepEqual(matchAddressList(list, "remote", facts, 0), walked, text);
          assert.deepEqual(matchAddressList(list, "remote", facts), walked, text);
        }
      },
    ),
    { numRuns: 400 },
  );
});

const rule = fc.record({
  direction: fc.constantFrom("ingress", "egress", "any"),
  protocol: fc.option(fc.constantFrom("tcp", "udp", "icmp", "any"), { nil: undefined }),
  port: fc.option(fc.subarray(["22", "80", "443", "20-25", "0-1023", "8080-8081"]), {
    nil: undefined,
  }),
  sourcePort: fc.option(fc.constantFrom("40000", "1024-65535"), { nil: undefined }),
  process: fc.boolean(),
});

type RuleSpec = typeof rule extends fc.Arbitrary<infer T> ? T : never;

function policyText(rules: RuleSpec[]): string {
  const lines = ["version: 1", "defaults: { ingress: block, egress: allow }", "rules:"];
  rules.forEach((r, i) => {
    lines.push(`  - name: r${i}`, `    direction: ${r.direction}`, "    action: allow");
    const ported = r.protocol !== "icmp";
    const parts = [];
    if (r.protocol) parts.push(`protocol: ${r.protocol}`);
    if (ported && r.port && r.port.length > 0) parts.push(`port: ${JSON.stringify(r.port)}`);
    if (ported && r.sourcePort) parts.push(`source_port: ["${r.sourcePort}"]`);
    if (parts.length > 0) lines.push(`    layer4: { ${parts.join(", ")} }`);
    if (r.process) lines.push("    process: { name: curl }");
  });
  return `${lines.join("\n")}\n`;
}

const connection: fc.Arbitrary<ConnectionFacts> = fc
  .record({
    direction: fc.constantFrom("ingress" as const, "egress" as const),
    protocol: fc.constantFrom("tcp" as const, "udp" as const, "icmp" as const),
    localPort: fc.constantFrom(22, 80, 443, 8080, 40000),
    remotePort: fc.constantFrom(22, 80, 443, 8081, 40000),
  })
  .map((f) => ({
    direction: f.direction,
    protocol: f.protocol,
    family: 4 as const,
    local: { ip: "10.0.0.1", ...(f.protocol === "icmp" ? {} : { port: f.localPort }) },
    remote: { ip: "192.0.2.7", ...(f.protocol === "icmp" ? {} : { port: f.remotePort }) },
    ...(f.protocol === "icmp" ? { icmp: { type: 8, code: 0 } } : {}),
  }));

test("the rules a connection is matched against leave out only rules that cannot match it", () => {
  fc.assert(
    fc.property(
      fc.array(rule, { minLength: 64, maxLength: 90 }),
      fc.array(connection, { minLength: 10, maxLength: 10 }),
      (rules, connections) => {
        const { model, diagnostics } = checkPolicySource(policyText(rules), "p.yaml", nodeHost);
        assert.ok(model, diagnostics.map((d) => d.message).join("\n"));
        for (const c of connections) {
          const prepared = prepareFacts(c);
          const kept = candidateRules(model, prepared.direction, prepared.transport);
          let last = -1;
          for (const r of kept) {
            const at = model.rules.indexOf(r as Rule);
            assert.ok(at > last, "in policy order, each once");
            last = at;
          }
          const left = new Set(kept);
          for (const r of model.rules)
            if (!left.has(r))
              assert.equal(matchRule(r, prepared).result, "no", `${r.name}: ${JSON.stringify(c)}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test("a rule with few server ports is found by its port, one with many among the rest", () => {
  const rules: RuleSpec[] = Array.from({ length: 70 }, () => ({
    direction: "ingress",
    protocol: "tcp",
    port: ["22"],
    sourcePort: undefined,
    process: false,
  }));
  rules[5] = { ...rules[5]!, port: ["8080-8081"] };
  rules[9] = { ...rules[9]!, port: ["0-1023"] };
  const { model } = checkPolicySource(policyText(rules), "p.yaml", nodeHost);
  assert.ok(model);
  const ask = (port: number) =>
    candidateRules(model, "ingress", { protocol: 6, serverPort: port }).map((r) => r.name);
  assert.deepEqual(ask(8081), ["r5", "r9"]);
  assert.equal(ask(22).length, 69);
  assert.deepEqual(candidateRules(model, "egress", { protocol: 6, serverPort: 22 }), []);
});
