// Properties over random policies and connections: the shadowing warning is sound (a rule reported
// unreachable never decides anything) and detect mode never blocks.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { nodeHost } from "../../src/host/policy-files.ts";
import { checkPolicySource } from "../../src/config/parse.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";

const ADDRESSES = [
  "10.0.0.0/8",
  "10.1.0.0/16",
  "10.1.2.3",
  "!10.1.0.0/16",
  "192.168.0.0/16",
  "!10.0.0.0/8",
  "0.0.0.0/0",
  "10.0.0.0-10.1.255.255",
  "set:corp",
  "!set:corp",
  "*.example.org",
  "!*.example.org",
];
const PORTS = ["22", "80", "443", "20-25", "0-1023", "set:web"];
const PROTOCOLS = ["tcp", "udp", "icmp", "any"];

const rule = fc.record({
  direction: fc.constantFrom("ingress", "egress", "any"),
  action: fc.constantFrom("allow", "block"),
  remote: fc.option(fc.subarray(ADDRESSES, { maxLength: 3 }), { nil: undefined }),
  local: fc.option(fc.subarray(ADDRESSES, { maxLength: 2 }), { nil: undefined }),
  protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: undefined }),
  port: fc.option(fc.subarray(PORTS, { minLength: 1, maxLength: 2 }), { nil: undefined }),
  mode: fc.option(fc.constantFrom("detect", "prevent"), { nil: undefined }),
});

type RuleSpec = typeof rule extends fc.Arbitrary<infer T> ? T : never;

function policyText(mode: string, rules: RuleSpec[]): string {
  const lines = [
    "version: 1",
    `mode: ${mode}`,
    "defaults: { ingress: block, egress: block }",
    'sets: { corp: ["10.0.0.0/8", "!10.1.0.0/16"], web: [80, 443] }',
    rules.length > 0 ? "rules:" : "rules: []",
  ];
  rules.forEach((r, i) => {
    lines.push(`  - name: r${i}`, `    direction: ${r.direction}`, `    action: ${r.action}`);
    if (r.mode) lines.push(`    mode: ${r.mode}`);
    if (r.remote || r.local) {
      const parts = [];
      if (r.remote) parts.push(`remote: ${JSON.stringify(r.remote)}`);
      if (r.local) parts.push(`local: ${JSON.stringify(r.local)}`);
      lines.push(`    layer3: { ${parts.join(", ")} }`);
    }
    const ported = r.protocol !== "icmp" && r.port;
    if (r.protocol || ported) {
      const parts = [];
      if (r.protocol) parts.push(`protocol: ${r.protocol}`);
      if (ported) parts.push(`port: ${JSON.stringify(r.port)}`);
      lines.push(`    layer4: { ${parts.join(", ")} }`);
    }
  });
  return `${lines.join("\n")}\n`;
}

const IPS = ["10.0.0.1", "10.1.2.3", "10.1.9.9", "10.2.0.1", "192.168.1.1", "203.0.113.9"];

const facts: fc.Arbitrary<ConnectionFacts> = fc
  .record({
    direction: fc.constantFrom("ingress" as const, "egress" as const),
    protocol: fc.constantFrom("tcp" as const, "udp" as const, "icmp" as const),
    local: fc.constantFrom(...IPS),
    remote: fc.constantFrom(...IPS),
    localPort: fc.constantFrom(22, 80, 443, 8080, 40000),
    remotePort: fc.constantFrom(22, 80, 443, 8080, 40000),
    // DNS names known for each address, so hostname entries are decided, not deferred
    localNames: fc.subarray(["a.example.org", "example.org", "x.test"]),
    remoteNames: fc.subarray(["a.example.org", "example.org", "x.test"]),
  })
  .map((f) => ({
    direction: f.direction,
    protocol: f.protocol,
    family: 4 as const,
    local: {
      ip: f.local,
      names: f.localNames,
      ...(f.protocol === "icmp" ? {} : { port: f.localPort }),
    },
    remote: {
      ip: f.remote,
      names: f.remoteNames,
      ...(f.protocol === "icmp" ? {} : { port: f.remotePort }),
    },
    ...(f.protocol === "icmp" ? { icmp: { type: 8, code: 0 } } : {}),
  }));

test("a rule reported as never matching never decides a connection", () => {
  fc.assert(
    fc.property(
      fc.array(rule, { minLength: 1, maxLength: 6 }),
      fc.array(facts, { minLength: 20, maxLength: 20 }),
      (rules, connections) => {
        const { model, diagnostics } = checkPolicySource(
          policyText("prevent", rules),
          "p.yaml",
          nodeHost,
        );
        assert.ok(model, diagnostics.map((d) => d.message).join("\n"));
        const shadowed = new Set(
          diagnostics
            .filter((d) => d.message.includes("can never match"))
            .map((d) => `r${d.path.slice(6, -1)}`),
        );
        for (const c of connections) {
          const result = evaluate(model, c);
          assert.ok(
            !shadowed.has(result.rule),
            `${result.rule} decided ${JSON.stringify(c)} but was reported unreachable`,
          );
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("the shadowing check finds the plain cases (so the property above is not vacuous)", () => {
  const text = policyText("prevent", [
    {
      direction: "any",
      action: "allow",
      remote: ["10.0.0.0/8"],
      local: undefined,
      protocol: undefined,
      port: undefined,
      mode: undefined,
    },
    {
      direction: "ingress",
      action: "block",
      remote: ["10.1.2.3"],
      local: undefined,
      protocol: "tcp",
      port: ["22"],
      mode: undefined,
    },
  ]);
  const { diagnostics } = checkPolicySource(text, "p.yaml", nodeHost);
  assert.deepEqual(
    diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`),
    [
      "10:5 rules[1]: rule 'r1' can never match: rule 'r0' (earlier, line 6) matches everything it matches",
    ],
  );
});

test("detect mode never blocks, except in rules that set mode: prevent themselves", () => {
  fc.assert(
    fc.property(fc.array(rule, { maxLength: 6 }), facts, (rules, c) => {
      const { model } = checkPolicySource(policyText("detect", rules), "p.yaml", nodeHost);
      assert.ok(model);
      const result = evaluate(model, c);
      assert.notEqual(result.verdict, "deferred");
      if (result.verdict === "blocked") {
        const decider = model.rules.find((r) => r.name === result.rule);
        assert.ok(decider?.ownMode && decider.mode === "prevent");
      }
      if (result.verdict === "detected") assert.equal(result.action, "block");
    }),
    { numRuns: 300 },
  );
});
