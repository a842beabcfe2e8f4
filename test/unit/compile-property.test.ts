// The compiled tables agree with the reference evaluator: random policies (written as YAML and read
// by the real loader) x random connections biased toward the policy's own boundaries; the verdict,
// rule, mode, report flag and max_duration of lookupImage must be the evaluator's Decision.
// A share of the policies carries local decisions and `dns: { doh: block }`: moat's own layers,
// placed by withImplicitRules before the file's rules, compiled as the daemon compiles them.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy, type LocalDecision, type PolicyModel } from "../../src/config/index.ts";
import { decisionProblems } from "../../src/config/decision.ts";
import { formatIp } from "../../src/config/ip.ts";
import { BASIC_NETWORKING, evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import type { ClassifierImage, PacketFacts } from "../../src/policy/compile/image.ts";
import { imageBasics, imageDecision, lookupImage } from "../../src/policy/compile/lookup.ts";
import { withImplicitRules } from "../../src/policy/implicit-rules.ts";
import { decisionsSpec, edges, type Edges } from "../helpers/policy-gen.ts";

// ---- policies ----------------------------------------------------------------------------

const V4_ANCHORS = [0x0a000000, 0x0a010200, 0x0a01ffff, 0xc0a80100, 0, 0xffffffff, 0xac100504];
const V6_ANCHORS = [
  0x20010db8n << 96n,
  (0x20010db8n << 96n) | 0xffffn,
  0xfdn << 120n,
  0n,
  0xffffn << 32n, // ::ffff:0.0.0.0, the IPv4-mapped block
  (1n << 128n) - 1n,
];

const v4Value = fc
  .tuple(fc.constantFrom(...V4_ANCHORS), fc.integer({ min: -300, max: 300 }), fc.nat(3))
  .map(([anchor, delta, wild]) =>
    wild === 0 ? (anchor * 7919 + delta * 104729) >>> 0 : (anchor + delta) >>> 0,
  );
const v6Value = fc
  .tuple(fc.constantFrom(...V6_ANCHORS), fc.integer({ min: -300, max: 300 }))
  .map(([anchor, delta]) => {
    const v = anchor + BigInt(delta);
    return v < 0n ? 0n : v >= 1n << 128n ? (1n << 128n) - 1n : v;
  });
const v4Text = (v: number) => formatIp({ family: 4, value: BigInt(v) });
const v6Text = (v: bigint) => formatIp({ family: 6, value: v });

const addressTarget: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(v4Value, fc.integer({ min: 0, max: 32 }))
      .map(([v, l]) => `${v4Text(v)}/${l}`),
  },
  { weight: 2, arbitrary: v4Value.map(v4Text) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(v4Value, v4Value)
      .map(([a, b]) => `${v4Text(Math.min(a, b))}-${v4Text(Math.max(a, b))}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(v6Value, fc.integer({ min: 0, max: 128 }))
      .map(([v, l]) => `${v6Text(v)}/${l}`),
  },
  { weight: 1, arbitrary: v6Value.map(v6Text) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(v6Value, v6Value)
      .map(([a, b]) => `${v6Text(a < b ? a : b)}-${v6Text(a < b ? b : a)}`),
  },
  { weight: 1, arbitrary: fc.constantFrom("0.0.0.0/0", "::/0") },
);
const addressEntry = fc.tuple(fc.boolean(), addressTarget).map(([neg, t]) => (neg ? `!${t}` : t));
const ADDRESS_SETS = ["a0", "a1", "a2", "e"];
const listEntry = fc.oneof(
  { weight: 4, arbitrary: addressEntry },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.boolean(), fc.constantFrom(...ADDRESS_SETS))
      .map(([neg, s]) => `${neg ? "!" : ""}set:${s}`),
  },
);
const addressList = fc.array(listEntry, { maxLength: 4 });

const portValue = fc.oneof(
  fc.constantFrom(0, 1, 22, 53, 80, 443, 1024, 8080, 65535),
  fc.integer({ min: 0, max: 65535 }),
);
const portEntry: fc.Arbitrary<number | string> = fc.oneof(
  { weight: 3, arbitrary: portValue },
  {
    weight: 3,
    arbitrary: fc
      .tuple(portValue, fc.integer({ min: 0, max: 3000 }))
      .map(([lo, w]) => `${lo}-${Math.min(65535, lo + w)}`),
  },
  { weight: 1, arbitrary: fc.constantFrom("set:p0", "set:p1", "set:e") },
);
const portList = fc.array(portEntry, { maxLength: 3 });

const PROTOCOLS = ["tcp", "udp", "icmp", "icmpv6", "any", 6, 17, 1, 58, 47, 0, 255];

const layer4 = fc
  .record({
    protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: undefined }),
    port: fc.option(portList, { nil: undefined, freq: 2 }),
    sourcePort: fc.option(portList, { nil: undefined, freq: 4 }),
    icmp: fc.option(
      fc.record({
        type: fc.constantFrom(0, 3, 8, 128, 255),
        code: fc.option(fc.constantFrom(0, 1, 255), { nil: undefined }),
      }),
      { nil: undefined },
    ),
    maxDuration: fc.boolean(),
  })
  .map((l4) => {
    // keep what the loader accepts with this protocol
    const p = l4.protocol;
    const ported =
      p === undefined || p === "any" || p === "tcp" || p === "udp" || p === 6 || p === 17;
    const icmp = p === "icmp" || p === "icmpv6" || p === 1 || p === 58;
    const parts: string[] = [];
    if (p !== undefined) parts.push(`protocol: ${p}`);
    if (ported && l4.port) parts.push(`port: ${JSON.stringify(l4.port)}`);
    if (ported && l4.sourcePort) parts.push(`source_port: ${JSON.stringify(l4.sourcePort)}`);
    if (icmp && l4.icmp)
      parts.push(
        `icmp: { type: ${l4.icmp.type}${l4.icmp.code === undefined ? "" : `, code: ${l4.icmp.code}`} }`,
      );
    if ((p === "tcp" || p === 6) && l4.maxDuration) parts.push("max_duration: 1h");
    return `{ ${parts.join(", ")} }`;
  });

const rule = fc.record({
  direction: fc.constantFrom("ingress", "egress", "any"),
  action: fc.constantFrom("allow", "block"),
  mode: fc.option(fc.constantFrom("detect", "prevent"), { nil: undefined }),
  log: fc.boolean(),
  remote: fc.option(addressList, { nil: undefined }),
  local: fc.option(addressList, { nil: undefined, freq: 3 }),
  layer4: fc.option(layer4, { nil: undefined, freq: 4 }),
});

const policySpec = fc.record({
  mode: fc.constantFrom("detect", "prevent"),
  ingress: fc.constantFrom("allow", "block"),
  egress: fc.constantFrom("allow", "block"),
  addressSets: fc.tuple(
    fc.array(addressEntry, { maxLength: 4 }),
    fc.array(addressEntry, { maxLength: 4 }),
    fc.array(addressEntry, { minLength: 1, maxLength: 3 }),
  ),
  portSets: fc.tuple(
    fc.array(
      portEntry.filter((p) => typeof p === "number" || !p.startsWith("set:")),
      { minLength: 1, maxLength: 3 },
    ),
    fc.array(portValue, { maxLength: 2 }),
  ),
  rules: fc.array(rule, { maxLength: 8 }),
  /** `dns: { doh: block }` with the policy's own doh-resolvers (moat's dns:doh rule). */
  doh: fc.option(fc.array(addressEntry, { minLength: 1, maxLength: 3 }), {
    nil: undefined,
    freq: 6,
  }),
});

/** A third of the policies carry local decisions. */
const localDecisions: fc.Arbitrary<LocalDecision[]> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<LocalDecision[]>([]) },
  { weight: 1, arbitrary: decisionsSpec },
);

type PolicySpec = typeof policySpec extends fc.Arbitrary<infer T> ? T : never;

function policyText(spec: PolicySpec): string {
  const q = (v: unknown) => JSON.stringify(v);
  const lines = [
    "version: 1",
    `mode: ${spec.mode}`,
    `defaults: { ingress: ${spec.ingress}, egress: ${spec.egress} }`,
    ...(spec.doh ? ["attach: { cgroup: / }", "dns: { doh: block }"] : []),
    "sets:",
    ...(spec.doh ? [`  doh-resolvers: ${q(spec.doh)}`] : []),
    ...spec.addressSets.map((s, i) => `  a${i}: ${q(s)}`),
    ...spec.portSets.map((s, i) => `  p${i}: ${q(s)}`),
    "  e: []",
    spec.rules.length > 0 ? "rules:" : "rules: []",
  ];
  spec.rules.forEach((r, i) => {
    lines.push(`  - name: r${i}`, `    direction: ${r.direction}`, `    action: ${r.action}`);
    if (r.mode) lines.push(`    mode: ${r.mode}`);
    if (r.log) lines.push("    log: true");
    if (r.remote || r.local) {
      const parts = [];
      if (r.remote) parts.push(`remote: ${q(r.remote)}`);
      if (r.local) parts.push(`local: ${q(r.local)}`);
      lines.push(`    layer3: { ${parts.join(", ")} }`);
    }
    if (r.layer4) lines.push(`    layer4: ${r.layer4}`);
  });
  return `${lines.join("\n")}\n`;
}

// ---- connections -------------------------------------------------------------------------

/** Interesting values of the policy: interval bounds and their neighbours, port-range edges. */
const packetDice = fc.record({
  egress: fc.boolean(),
  protocol: fc.nat(20),
  family6: fc.nat(9),
  remote: fc.tuple(fc.nat(4), fc.nat(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })),
  local: fc.tuple(fc.nat(4), fc.nat(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })),
  serverPort: fc.tuple(fc.nat(3), fc.nat(), fc.integer({ min: 0, max: 65535 })),
  clientPort: fc.tuple(fc.nat(3), fc.nat(), fc.integer({ min: 0, max: 65535 })),
  icmp: fc.tuple(fc.nat(), fc.nat(255), fc.nat(3)),
  hopLimit: fc.constantFrom(255, 64, 1),
});

type Dice = typeof packetDice extends fc.Arbitrary<infer T> ? T : never;

interface Connection {
  facts: ConnectionFacts;
  packet: PacketFacts;
}

function bytes(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Number((value >> BigInt(8 * (length - 1 - i))) & 0xffn);
  return out;
}

function connection(e: Edges, d: Dice): Connection {
  const family: 4 | 6 = d.family6 < 3 ? 6 : 4;
  // IPv4 sometimes arrives as IPv4-mapped IPv6: the evaluator judges it as IPv4, the kernel
  // hands the classifier family 4
  const mapped = family === 4 && d.family6 === 9;
  const pickAddress = ([how, i, random]: [number, number, bigint]): bigint => {
    const list = family === 4 ? e.v4 : e.v6;
    const v = how < 3 ? list[i % list.length]! : family === 4 ? random & 0xffffffffn : random;
    // an IPv6 packet carries no IPv4-mapped address here (that is the `mapped` case)
    return family === 6 && v >> 32n === 0xffffn ? v ^ (1n << 100n) : v;
  };
  const pickPort = ([how, i, random]: [number, number, number]): number =>
    how < 2 ? e.ports[i % e.ports.length]! : random;
  const protocols = [6, 17, 1, 58, 47, 0, 2, 255, ...e.protocols];
  const protocol =
    d.protocol < 5 ? 6 : d.protocol < 9 ? 17 : protocols[d.protocol % protocols.length]!;
  const remote = pickAddress(d.remote);
  const local = pickAddress(d.local);
  const serverPort = pickPort(d.serverPort);
  const clientPort = pickPort(d.clientPort);
  const icmpTypes = [0, 8, 128, 130, 133, 134, 135, 136, 137, 143, ...e.icmp];
  const icmpType = d.icmp[2] < 2 ? icmpTypes[d.icmp[0] % icmpTypes.length]! : d.icmp[0] % 256;
  const icmpCode = d.icmp[2] === 0 ? 255 : d.icmp[2] === 1 ? 0 : d.icmp[1];
  const direction = d.egress ? ("egress" as const) : ("ingress" as const);
  const ip = (v: bigint) =>
    family === 6 ? v6Text(v) : mapped ? `::ffff:${v4Text(Number(v))}` : v4Text(Number(v));
  const ported = protocol === 6 || protocol === 17;
  const icmp = protocol === 1 || protocol === 58;
  const port = (p: number) => (ported ? { port: p } : {});
  const facts: ConnectionFacts = {
    direction,
    protocol,
    family: mapped ? 6 : family,
    remote: { ip: ip(remote), ...port(direction === "ingress" ? clientPort : serverPort) },
    local: { ip: ip(local), ...port(direction === "ingress" ? serverPort : clientPort) },
    ...(icmp ? { icmp: { type: icmpType, code: icmpCode } } : {}),
    hopLimit: d.hopLimit,
  };
  const packet: PacketFacts = {
    hopLimit: d.hopLimit,
    direction,
    family,
    protocol,
    remote: bytes(remote, family === 4 ? 4 : 16),
    local: bytes(local, family === 4 ? 4 : 16),
    serverPort,
    clientPort,
    icmpType,
    icmpCode,
  };
  return { facts, packet };
}

/** The policy with its local decisions, and its image compiled as the daemon compiles it. */
function build(spec: PolicySpec, decisions: LocalDecision[]) {
  for (const d of decisions) assert.deepEqual(decisionProblems(d), [], JSON.stringify(d));
  const written = parsePolicy(policyText(spec), "p.yaml");
  const model = decisions.length ? { ...written, decisions } : written;
  const judged = withImplicitRules(model);
  return { model, image: compile(judged), edges: edges(judged) };
}

function agree(model: PolicyModel, image: ClassifierImage, c: Connection): void {
  const expected = evaluate(model, c.facts);
  assert.ok(expected.verdict !== "deferred", "the generator makes only packet-decidable rules");
  // basic networking passes before the table walk, as in the kernel
  // (by the family on the wire: an IPv4-mapped address is IPv6 there)
  const basic = imageBasics(image, { ...c.packet, family: c.facts.family }) !== undefined;
  assert.equal(basic, expected.rule === BASIC_NETWORKING, `basic networking: ${expected.reason}`);
  if (basic) return;
  const got = imageDecision(image, lookupImage(image, c.packet));
  if (expected.rule !== "default") byRule++;
  if (expected.rule.startsWith("decision:")) byDecision++;
  if (expected.rule === "dns:doh") byDoh++;
  assert.deepEqual(
    got,
    {
      verdict: expected.verdict,
      action: expected.action,
      rule: expected.rule,
      mode: expected.mode,
      report: expected.report,
      maxDurationSeconds: expected.maxDurationSeconds ?? 0,
    },
    `connection ${JSON.stringify(c.facts)}: evaluator says ${expected.reason}\ndecisions: ${JSON.stringify(model.decisions ?? [])}`,
  );
}

// COMPILE_PROPERTY_SCALE=10 runs ten times as many cases (for a longer hunt)
const SCALE = Number(process.env.COMPILE_PROPERTY_SCALE ?? 1);
let checked = 0;
/** Connections decided by a rule (not a default): the properties are not vacuous. */
let byRule = 0;
/** Connections decided by a local decision. */
let byDecision = 0;
let byDoh = 0;
/** FC_SEED (and FC_PATH) from a failure's report replay it. */
const RUN = process.env.FC_SEED
  ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH }
  : {};

test("lookupImage decides every connection as the reference evaluator does", () => {
  fc.assert(
    fc.property(
      policySpec,
      fc.array(packetDice, { minLength: 40, maxLength: 40 }),
      localDecisions,
      (spec, dice, decisions) => {
        const { model, image, edges: e } = build(spec, decisions);
        for (const d of dice) {
          agree(model, image, connection(e, d));
          checked++;
        }
      },
    ),
    { numRuns: 500 * SCALE, ...RUN },
  );
});

test("longer policies (up to 30 rules) agree too", () => {
  fc.assert(
    fc.property(
      policySpec.chain((s) =>
        fc.array(rule, { minLength: 10, maxLength: 30 }).map((rules) => ({ ...s, rules })),
      ),
      fc.array(packetDice, { minLength: 60, maxLength: 60 }),
      localDecisions,
      (spec, dice, decisions) => {
        const { model, image, edges: e } = build(spec, decisions);
        for (const d of dice) {
          agree(model, image, connection(e, d));
          checked++;
        }
      },
    ),
    { numRuns: 150 * SCALE, ...RUN },
  );
});

test("the properties checked thousands of connections", () => {
  assert.ok(checked >= 25_000, `only ${checked} connections checked`);
  // about a quarter are decided by a rule (the rest by the defaults or as basic networking);
  // a fifth is the floor
  assert.ok(byRule > checked / 5, `only ${byRule} of ${checked} decided by a rule`);
  assert.ok(byDecision > 100, `only ${byDecision} decided by a local decision`);
  console.log(
    `# ${checked} connections checked against the evaluator, ${byRule} decided by a rule, ${byDecision} by a local decision, ${byDoh} by dns:doh`,
  );
});
