// Properties of process and interface facts over random policies:
// - a policy that judges packets only decides the same whatever process/interface facts are added;
// - with full process and interface facts, a policy of process/interface/packet rules is never
//   deferred, and the decision is one of those the packet-only evaluation said were possible.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import type { InterfaceFacts, ProcessFacts } from "../../src/policy/facts.ts";
import { edges, firstPacket, packetDice, policySpec, policyText } from "../helpers/policy-gen.ts";

const ID = "3f2a9c0e1b7d4a5f8e6c2b1a0d9f8e7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

const processFacts: fc.Arbitrary<ProcessFacts> = fc.record({
  pid: fc.integer({ min: 1, max: 4_000_000 }),
  name: fc.constantFrom("curl", "wget", "nginx", "sshd"),
  path: fc.constantFrom("/usr/bin/curl", "/usr/bin/wget", "/usr/sbin/nginx", ""),
  user: fc.constantFrom(0, 33, 1000, 1001),
  userName: fc.constantFrom("root", "www-data", "alice", null),
  cgroup: fc.constantFrom("/", "/user.slice/user-1000.slice", `/system.slice/docker-${ID}.scope`),
  container: fc.option(
    fc.record({
      id: fc.constantFrom(ID, "ab".repeat(32)),
      name: fc.constantFrom("web", "db"),
      image: fc.constantFrom("docker.io/library/nginx:1.27", "redis:7"),
    }),
    { nil: null },
  ),
});

const interfaceFacts: fc.Arbitrary<InterfaceFacts> = fc.record({
  name: fc.constantFrom("eth0", "wg0", "vxlan1", "tun0"),
  tunnel: fc.boolean(),
});

test("adding process or interface facts never changes a packet-only decision", () => {
  fc.assert(
    fc.property(
      policySpec,
      fc.array(packetDice, { minLength: 1, maxLength: 4 }),
      fc.option(processFacts, { nil: undefined }),
      fc.option(interfaceFacts, { nil: undefined }),
      (spec, dice, process, iface) => {
        const model = parsePolicy(policyText(spec), "p.yaml");
        const e = edges(model);
        for (const d of dice) {
          const { facts } = firstPacket(e, d);
          const more: ConnectionFacts = { ...facts };
          if (process) more.process = process;
          if (iface) more.interface = iface;
          assert.deepEqual(evaluate(model, more), evaluate(model, facts));
        }
      },
    ),
    { numRuns: 300 },
  );
});

const contextRule = fc.record({
  action: fc.constantFrom("allow", "block"),
  port: fc.option(fc.constantFrom(22, 443), { nil: undefined }),
  process: fc.option(
    fc.constantFrom(
      "{ path: /usr/bin/curl }",
      '{ name: "w*" }',
      "{ user: [1000, www-data] }",
      "{ user: [root] }",
      "{ cgroup: /system.slice }",
      '{ container: { id: "3f2a*" } }',
      '{ container: { name: web, image: "nginx:*" } }',
      "{ path: /usr/sbin/nginx, user: [33] }",
    ),
    { nil: undefined },
  ),
  interface: fc.option(
    fc.constantFrom('{ name: ["wg*"] }', "{ tunnel: true }", "{ name: [eth0], tunnel: false }"),
    { nil: undefined },
  ),
});

function contextPolicy(rules: (typeof contextRule extends fc.Arbitrary<infer T> ? T : never)[]) {
  const lines = ["version: 1", "mode: prevent", "defaults: { ingress: block, egress: allow }"];
  lines.push(rules.length > 0 ? "rules:" : "rules: []");
  rules.forEach((r, i) => {
    lines.push(`  - name: r${i}`, "    direction: egress", `    action: ${r.action}`);
    if (r.port !== undefined) lines.push(`    layer4: { protocol: tcp, port: [${r.port}] }`);
    if (r.process) lines.push(`    process: ${r.process}`);
    if (r.interface) lines.push(`    interface: ${r.interface}`);
  });
  return parsePolicy(`${lines.join("\n")}\n`, "p.yaml");
}

test("with full facts nothing is deferred, and the decision is one the deferral listed", () => {
  fc.assert(
    fc.property(
      fc.array(contextRule, { maxLength: 6 }),
      processFacts,
      interfaceFacts,
      fc.constantFrom(22, 443, 8080),
      (rules, process, iface, port) => {
        const model = contextPolicy(rules);
        const packet: ConnectionFacts = {
          direction: "egress",
          protocol: "tcp",
          family: 4,
          local: { ip: "10.0.0.5", port: 40000 },
          remote: { ip: "203.0.113.9", port },
        };
        const full = evaluate(model, { ...packet, process, interface: iface });
        assert.notEqual(full.verdict, "deferred");
        const partial = evaluate(model, packet);
        if (partial.verdict === "deferred")
          assert.ok(
            partial.possible.some((d) => d.rule === full.rule && d.verdict === full.verdict),
            `${full.rule} not among ${partial.possible.map((d) => d.rule).join(", ")}`,
          );
        else assert.deepEqual(full, partial);
      },
    ),
    { numRuns: 500 },
  );
});
