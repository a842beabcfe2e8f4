// Compiler step 1: what each rule matches per dimension. Address lists follow match-address.ts
// (positives or everything, minus negatives; sets with "no entries = nothing"); layer4 follows
// match-layer4.ts (ports only for tcp/udp, icmp type without code = 256 codes, other protocols by
// number); interval algebra on flat half-open lists.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { analyze } from "../../src/policy/compile/dimensions.ts";
import { subtract, unionOf } from "../../src/policy/compile/intervals.ts";
import { SIZE4 } from "../../src/policy/compile/address-regions.ts";
import { DIRECTION_SPACE, PORT_SPACE } from "../../src/policy/compile/ports.ts";

const ip4 = (text: string): number =>
  text.split(".").reduce((v, part) => v * 256 + Number(part), 0);

const flat = (...values: number[]) => Float64Array.from(values);

/** The analysis of one rule whose body (after name/direction/action) is given. */
function analyzeRule(body: string, direction = "ingress") {
  const model = parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  corp: [10.0.0.0/8, "!10.66.0.0/16"]
  not-ten: ["!10.0.0.0/8"]
  empty: []
  web: [80, "8000-8999"]
rules:
  - name: r
    direction: ${direction}
    action: allow
${body}`,
    "p.yaml",
  );
  const { rules, regions } = analyze(model);
  return { dims: rules[0]!, regions };
}

test("unionOf merges overlapping and adjacent intervals, in any order", () => {
  assert.deepEqual(unionOf(flat(5, 1, 20, 3), flat(8, 3, 30, 5)), flat(1, 8, 20, 30));
  assert.deepEqual(unionOf(flat(), flat()), flat());
});

test("subtract cuts holes and trims edges", () => {
  assert.deepEqual(
    subtract(flat(0, 10, 20, 30), flat(2, 4, 8, 22, 29, 40)),
    flat(0, 2, 4, 8, 22, 29),
  );
  assert.deepEqual(subtract(flat(0, 10), flat(0, 10)), flat());
});

test("a list is its positives minus its negatives, in the positives' family only", () => {
  const { dims } = analyzeRule('    layer3: { remote: [10.0.0.0/8, "!10.1.0.0/16"] }');
  assert.deepEqual(
    dims.remote?.v4,
    flat(ip4("10.0.0.0"), ip4("10.1.0.0"), ip4("10.2.0.0"), ip4("11.0.0.0")),
  );
  assert.deepEqual(dims.remote?.v6, flat());
  assert.equal(dims.local, undefined, "an absent list is a wildcard");
});

test("a list of only exclusions matches everything else, the other family included", () => {
  const { dims, regions } = analyzeRule('    layer3: { remote: ["!10.0.0.0/8"] }');
  assert.deepEqual(dims.remote?.v4, flat(0, ip4("10.0.0.0"), ip4("11.0.0.0"), SIZE4));
  assert.deepEqual(dims.remote?.v6, flat(0, regions.spaces.size6));
});

test("a set of only exclusions is everything else; excluding it leaves what it excluded", () => {
  const used = analyzeRule("    layer3: { remote: [set:not-ten] }").dims.remote;
  assert.deepEqual(used?.v4, flat(0, ip4("10.0.0.0"), ip4("11.0.0.0"), SIZE4));
  const excluded = analyzeRule('    layer3: { remote: ["!set:not-ten"] }').dims.remote;
  assert.deepEqual(excluded?.v4, flat(ip4("10.0.0.0"), ip4("11.0.0.0")));
  assert.deepEqual(excluded?.v6, flat(), "IPv6 is in not-ten, so excluded");
});

test("an empty set contains nothing: using it matches nothing, excluding it matches anything", () => {
  assert.equal(analyzeRule("    layer3: { remote: [set:empty] }").dims.empty, true);
  const { dims } = analyzeRule('    layer3: { remote: ["!set:empty"] }');
  assert.equal(dims.empty, false);
  assert.equal(dims.remote, undefined, "everything in both families is a wildcard");
});

test("an empty list matches nothing, like an empty set (docs/policy.md)", () => {
  const { dims } = analyzeRule("    layer3: { remote: [] }");
  assert.deepEqual(dims.remote, { v4: flat(), v6: flat() });
});

test("set members with exclusions: corp is 10/8 except 10.66/16", () => {
  const { dims } = analyzeRule('    layer3: { local: [set:corp, "192.168.1.10-192.168.1.20"] }');
  assert.deepEqual(
    dims.local?.v4,
    flat(
      ip4("10.0.0.0"),
      ip4("10.66.0.0"),
      ip4("10.67.0.0"),
      ip4("11.0.0.0"),
      ip4("192.168.1.10"),
      ip4("192.168.1.21"),
    ),
  );
});

test("IPv6 intervals become ranks of the policy's IPv6 bounds", () => {
  const { dims, regions } = analyzeRule(
    '    layer3: { remote: ["2001:db8::/32", "!2001:db8::1"] }',
  );
  const { points6 } = regions.spaces;
  const v6 = [...(dims.remote?.v6 ?? [])].map((rank) => points6[rank]);
  const base = 0x20010db8n << 96n;
  assert.deepEqual(v6, [base, base + 1n, base + 2n, base + (1n << 96n)]);
});

test("layer4: a port list restricts protocol any to the tcp and udp slots", () => {
  const { dims } = analyzeRule("    layer4: { port: [22, set:web] }");
  const ingress = (slot: number, lo: number, hi: number) => [
    slot * 65536 + lo,
    slot * 65536 + hi + 1,
  ];
  assert.deepEqual(
    dims.port,
    flat(
      ...ingress(0, 22, 22),
      ...ingress(0, 80, 80),
      ...ingress(0, 8000, 8999),
      ...ingress(1, 22, 22),
      ...ingress(1, 80, 80),
      ...ingress(1, 8000, 8999),
    ),
  );
  assert.equal(dims.sport, undefined);
  assert.equal(dims.anyLayer4, false);
});

test("layer4: egress rules live in the second half of the port space", () => {
  const { dims } = analyzeRule("    layer4: { protocol: udp, port: [53] }", "egress");
  const at = DIRECTION_SPACE + 1 * 65536 + 53;
  assert.deepEqual(dims.port, flat(at, at + 1));
});

test("layer4: icmp type without code covers its 256 codes; with code, one value", () => {
  const any = analyzeRule("    layer4: { protocol: icmp, icmp: { type: 8 } }").dims.port;
  assert.deepEqual(any, flat(2 * 65536 + (8 << 8), 2 * 65536 + (8 << 8) + 256));
  const one = analyzeRule("    layer4: { protocol: icmpv6, icmp: { type: 128, code: 3 } }").dims
    .port;
  assert.deepEqual(one, flat(3 * 65536 + (128 << 8) + 3, 3 * 65536 + (128 << 8) + 4));
  const all = analyzeRule("    layer4: { protocol: icmp }").dims.port;
  assert.deepEqual(all, flat(2 * 65536, 3 * 65536));
});

test("layer4: another protocol number is one value of the 'other' slot; tcp by number is tcp", () => {
  assert.deepEqual(
    analyzeRule("    layer4: { protocol: 47 }").dims.port,
    flat(4 * 65536 + 47, 4 * 65536 + 48),
  );
  assert.deepEqual(analyzeRule("    layer4: { protocol: 6 }").dims.port, flat(0, 65536));
});

test("layer4: no constraint in one direction is 'any layer4' but not a port wildcard", () => {
  const one = analyzeRule("    layer4: { protocol: any }").dims;
  assert.equal(one.anyLayer4, true);
  assert.deepEqual(one.port, flat(0, DIRECTION_SPACE));
  const both = analyzeRule("    layer4: { protocol: any }", "any").dims;
  assert.equal(both.port, undefined);
  assert.equal(PORT_SPACE, 2 * DIRECTION_SPACE);
});

test("source ports are indexes 1 + port; an empty port list matches nothing", () => {
  const { dims } = analyzeRule('    layer4: { protocol: tcp, source_port: ["1024-65535"] }');
  assert.deepEqual(dims.sport, flat(1025, 65537));
  assert.deepEqual(dims.port, flat(0, 65536), "source ports alone keep the whole tcp slot");
  assert.equal(analyzeRule("    layer4: { protocol: tcp, port: [] }").dims.empty, true);
  assert.equal(analyzeRule("    layer4: { port: [set:empty] }").dims.empty, true);
});
