// Basic networking in the reference evaluator and the compiler: neighbour and router discovery
// (hop limit 255), MLD, IGMP and DHCP client traffic are allowed unjudged, never reported, under a
// policy that blocks everything; a rule that names a class explicitly makes it judged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { BASIC_NETWORKING, evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import { BASICS, judgedBasics } from "../../src/policy/network-basics.ts";

const blockAll = (rules = "rules: []") =>
  parsePolicy(
    `version: 1\nmode: prevent\ndefaults: { ingress: block, egress: block }\n${rules}\n`,
    "p.yaml",
  );

const ns = (hopLimit?: number, type = 135): ConnectionFacts => ({
  direction: "ingress",
  protocol: "icmpv6",
  family: 6,
  local: { ip: "fe80::1" },
  remote: { ip: "fe80::2" },
  icmp: { type, code: 0 },
  ...(hopLimit === undefined ? {} : { hopLimit }),
});
const dhcp4 = (direction: "ingress" | "egress"): ConnectionFacts => ({
  direction,
  protocol: "udp",
  family: 4,
  local: { ip: "10.0.0.9", port: 68 },
  remote: { ip: "10.0.0.254", port: 67 },
});

test("neighbour discovery with hop limit 255 is allowed unjudged, not reported", () => {
  const d = evaluate(blockAll(), ns(255));
  assert.equal(d.verdict, "allowed");
  assert.equal(d.rule, BASIC_NETWORKING);
  assert.equal(d.report, false);
  assert.match(
    d.reason,
    /neighbour solicitation \(icmpv6 type 135\) with hop limit 255 is basic networking/,
  );
});

test("neighbour discovery with another hop limit, or none given, is judged", () => {
  assert.equal(evaluate(blockAll(), ns(64)).verdict, "blocked");
  assert.equal(evaluate(blockAll(), ns()).verdict, "blocked");
});

test("MLD passes whatever its hop limit", () => {
  for (const type of [130, 131, 132, 143])
    assert.equal(evaluate(blockAll(), ns(1, type)).rule, BASIC_NETWORKING, `type ${type}`);
});

test("DHCPv4 client traffic passes both ways; a DHCP server's is judged", () => {
  assert.equal(evaluate(blockAll(), dhcp4("egress")).rule, BASIC_NETWORKING);
  assert.equal(evaluate(blockAll(), dhcp4("ingress")).rule, BASIC_NETWORKING);
  const server: ConnectionFacts = {
    ...dhcp4("ingress"),
    local: { ip: "10.0.0.1", port: 67 },
    remote: { ip: "10.0.0.9", port: 68 },
  };
  assert.equal(evaluate(blockAll(), server).verdict, "blocked");
});

test("DHCPv6 client traffic passes, not on IPv4", () => {
  const f: ConnectionFacts = {
    direction: "egress",
    protocol: "udp",
    family: 6,
    local: { ip: "fe80::1", port: 546 },
    remote: { ip: "ff02::1:2", port: 547 },
  };
  assert.equal(evaluate(blockAll(), f).rule, BASIC_NETWORKING);
  const v4 = { ...f, family: 4 as const, local: { ip: "10.0.0.1", port: 546 } };
  assert.equal(
    evaluate(blockAll(), { ...v4, remote: { ip: "10.0.0.2", port: 547 } }).verdict,
    "blocked",
  );
});

test("a rule naming an icmpv6 type or a DHCP port makes that class judged", () => {
  const p = blockAll(`rules:
  - name: ns-from-router
    direction: ingress
    action: allow
    layer3: { remote: [fe80::fe] }
    layer4: { protocol: icmpv6, icmp: { type: 135 } }
  - name: dhcp-range
    direction: egress
    action: block
    layer4: { protocol: udp, port: ["67-68"] }`);
  assert.equal(evaluate(p, ns(255)).verdict, "blocked");
  assert.equal(evaluate(p, ns(255, 136)).rule, BASIC_NETWORKING);
  const d = evaluate(p, dhcp4("egress"));
  assert.equal(d.rule, "dhcp-range");
  assert.equal(judgedBasics(p), (1 << 5) | (1 << 9));
});

test("`any`, a whole protocol or a wider port range never names basic networking", () => {
  const p = blockAll(`sets:
  low: ["1-1000"]
rules:
  - name: all-udp
    direction: any
    action: block
    layer4: { protocol: udp }
  - name: all-icmpv6
    direction: any
    action: block
    layer4: { protocol: icmpv6 }
  - name: low-ports
    direction: any
    action: block
    layer4: { port: [set:low], source_port: ["60-70"] }
  - name: everything
    direction: any
    action: block`);
  assert.equal(judgedBasics(p), 0);
  assert.equal(evaluate(p, dhcp4("egress")).rule, BASIC_NETWORKING);
});

test("the compiler writes the named classes for the kernel", () => {
  const p = blockAll(`rules:
  - name: igmp
    direction: egress
    action: allow
    layer4: { protocol: 2 }
  - name: dhcp6
    direction: ingress
    action: allow
    layer4: { protocol: udp, source_port: [547] }`);
  assert.equal(compile(p).basicsJudged, (1 << 11) | (1 << 10));
  assert.deepEqual(
    BASICS.map((c) => c.bit),
    BASICS.map((_, i) => i),
    "one class per bit, in order (enum moat_basics)",
  );
});
