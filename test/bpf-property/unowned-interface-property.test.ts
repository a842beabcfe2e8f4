// Packets no process owns (a container's that the host forwards, any arriving packet before the
// accept hook knows its listener) are judged as the reference evaluator judges them with no
// process and the interface they pass: random policies of rules with `interface` sections (name
// globs, tunnel true or false) in every direction, rules with `process` sections (which never
// match such a packet; TCP only on incoming connections, as moat requires), plain
// L3/L4 rules, rules naming local addresses or source ports (placed where moat accepts the process
// and interface rules around them), both actions and modes, and the defaults, compiled with a
// process universe whose route mirror gives the loopback device (ifindex 1, the device of a test
// run's packet) a random name and tunnel flag, next to links the packets do not use (where the
// mirror's routes send them). Each policy meets, one fresh connection each:
// - leaving: IPv4 and IPv6 TCP and UDP first packets that came in by another device through the
//   TC egress program (BPF_PROG_TEST_RUN, __sk_buff.ifindex 1, ingress_ifindex set: forwarded);
// - arriving: IPv4 and IPv6 TCP SYNs and UDP datagrams through the XDP program
//   (xdp_md.ingress_ifindex 1) or the TC ingress program (__sk_buff.ifindex 1), the accept hook
//   attached as attach.cgroup attaches it, then the local end's answer (SYN-ACK, datagram)
//   through TC egress. No accept hook runs in a test run: the answer settles the entry, as for a
//   listener outside the cgroup. A SYN that a process rule could still decide (the evaluator,
//   not told the process, defers) is passed undecided to the accept hook; so may be one that
//   XDP's question (bpf/include/accept.h) cannot tell from those: a process rule whose sections
//   but the process one match, a source-port rule ahead whose other sections match. Every other
//   first packet is decided at once.
// The verdict (pass/drop; of an arriving connection, its first packet's, then its answer's) and
// the event (its type, rule and mode, or none) must be what evaluate() decides for
// { process: null, interface: { name, tunnel } }.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy, textOnlyHost, type PolicyModel } from "../../src/config/index.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";
import { acceptPolicyText } from "../../src/policy/accept-text.ts";
import type { ProcessUniverse } from "../../src/policy/compile/process.ts";
import { evaluate, type ConnectionFacts, type Evaluation } from "../../src/policy/evaluator.ts";
import type { LinkInfo, RouteEntry } from "../../src/route/types.ts";
import { TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS } from "../helpers/kernel-lab.ts";
import { packet } from "../helpers/packets.ts";
import { anchorXdp, type XdpAnchor } from "../helpers/xdp-anchor.ts";

const POLICIES = 60;
const PACKETS = 100;
/**
 * The loopback device: the device a test run's packet has when ctx_in names none or ifindex 1
 * (bpf_prog_test_run_skb, bpf_prog_test_run_xdp), named here in ctx_in all the same.
 */
const LOOPBACK = 1;
/** sizeof(struct __sk_buff), where its ingress_ifindex and ifindex are. */
const SKB_CTX_SIZE = 192;
const SKB_INGRESS_IFINDEX_AT = 36;
const SKB_IFINDEX_AT = 40;
/** The device a forwarded packet came in by: another of the universe's links. */
const FORWARDED_FROM = 11;
/** sizeof(struct xdp_md), where its data_end and ingress_ifindex are. */
const XDP_CTX_SIZE = 24;
const XDP_DATA_END_AT = 4;
const XDP_INGRESS_IFINDEX_AT = 12;

const NAMES = ["lo", "eth0", "ens3", "wg0", "tun7", "vxlan42", "docker0", "veth9a"];
const NAME_GLOBS = ["lo", "l*", "eth*", "e*", "wg0", "*0", "tun*", "vxlan*", "*", "docker0", "v*"];
const REMOTES4 = ["10.61.0.1", "10.61.0.2", "192.0.2.77", "127.0.0.1"];
const REMOTES6 = ["2001:db8::5", "2001:db8::6", "2001:db8:ffff::1", "::1"];
const LOCALS4 = ["10.0.0.1", "10.0.0.9"];
const LOCALS6 = ["fd00::1", "fd00:1::9"];
const PORTS = [22, 80, 443, 8080];
const SPORTS = [1000, 40000, 50001, 60000];

/** FC_SEED (and FC_PATH) from a failure's report replay it; a run says the seed it used. */
const SEED = process.env.FC_SEED
  ? Number(process.env.FC_SEED)
  : (Date.now() ^ (Math.random() * 2 ** 32)) | 0;

let dp: Datapath;
let ring: RingBuffer;
let anchor: XdpAnchor | undefined;
let pending: MoatEvent[] = [];
const rulesOf = new Map<number, ImageRule[]>();
const tally = {
  cases: 0,
  byInterfaceRule: 0,
  byRule: 0,
  dropped: 0,
  reported: 0,
  /** Cases some process rule's other sections match: it would be in the running with a process. */
  processRuleWouldMatch: 0,
};
const arrivals = {
  cases: 0,
  byInterfaceRule: 0,
  bySourcePortRule: 0,
  dropped: 0,
  reported: 0,
  /** SYNs a process rule could decide, passed undecided to the accept hook. */
  deferred: 0,
  /** SYNs no process rule could decide, passed undecided all the same (XDP's question). */
  deferredNeedlessly: 0,
  /** SYNs decided at once, though the policy has a process rule for incoming connections. */
  decidedPastProcessRules: 0,
  tcIngress: 0,
};

before(() => {
  // the accept hook attached (attach.cgroup): new incoming connections wait for it
  dp = Datapath.start({ interfaces: [], pinRoot: null, socketHooks: false });
  dp.acceptHooks = true;
  anchor = anchorXdp(dp.xdp);
  ring = dp.subscribe((record) =>
    pending.push(
      decodeEvent(record, {
        bootTimeMs: 0,
        rule: (index, generation) => rulesOf.get(generation)?.[index],
        interfaceName: () => null,
      }),
    ),
  );
});

after(() => {
  anchor?.release();
  dp?.stop();
  console.log(`unowned interface property: ${JSON.stringify({ seed: SEED, ...tally })}`);
  console.log(`unowned interface property, arriving: ${JSON.stringify(arrivals)}`);
});

/** Events reported since the last call, as "type rule mode". */
function events(): string[] {
  ring.drain();
  const out = pending;
  pending = [];
  return out.map((ev) => `${ev.type} ${ev.rule} ${ev.mode}`);
}

/** The event evaluate() says is reported, as events() gives it. */
function eventsOf(expected: Evaluation): string[] {
  return expected.verdict !== "deferred" && expected.report
    ? [`${expected.verdict} ${expected.rule} ${expected.mode}`]
    : [];
}

const addresses = fc.subarray(
  [
    "10.61.0.0/16",
    "10.61.0.2",
    "!10.61.0.1",
    "192.0.2.0/24",
    "127.0.0.1",
    "2001:db8::/64",
    "2001:db8::6",
    "!2001:db8::5",
    "::1",
  ],
  { minLength: 1, maxLength: 3 },
);
const localAddresses = fc.subarray(["10.0.0.1", "10.0.0.0/24", "fd00::/64", "!fd00::1"], {
  minLength: 1,
  maxLength: 2,
});
const portList = fc.subarray([...PORTS, "1000-50000"], { minLength: 1, maxLength: 2 });
const sourcePortList = fc.subarray([1000, 40000, "50000-60000"], { minLength: 1, maxLength: 2 });

const interfaceSection = fc
  .record(
    {
      name: fc.subarray(NAME_GLOBS, { minLength: 1, maxLength: 3 }),
      tunnel: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  .filter((s) => s.name !== undefined || s.tunnel !== undefined);

const processSection = fc
  .record(
    {
      path: fc.subarray(["/usr/bin/curl", "/usr/bin/*"], { minLength: 1 }),
      name: fc.subarray(["curl", "py*"], { minLength: 1 }),
      user: fc.subarray(["root", 65534], { minLength: 1 }),
      cgroup: fc.subarray(["/system.slice/*", "/"], { minLength: 1 }),
    },
    { requiredKeys: [] },
  )
  .filter((s) => Object.keys(s).length > 0);

/** `arb` in `share` of the draws, undefined in the others. */
function sometimes<T>(arb: fc.Arbitrary<T>, share: number): fc.Arbitrary<T | undefined> {
  return fc.oneof(
    { weight: Math.round(share * 12), arbitrary: arb },
    { weight: Math.round((1 - share) * 12), arbitrary: fc.constant(undefined) },
  );
}

const ruleSpec = fc
  .constantFrom("egress", "egress", "egress", "egress", "any", "ingress", "ingress")
  .chain((direction) =>
    fc.record({
      direction: fc.constant(direction),
      action: fc.constantFrom("allow", "block"),
      mode: sometimes(fc.constantFrom("detect", "prevent"), 1 / 3),
      log: fc.boolean(),
      remote: sometimes(addresses, 1 / 2),
      // rare: no egress process or interface section is accepted below such a rule
      local: sometimes(localAddresses, 1 / 12),
      protocol: sometimes(fc.constantFrom("tcp", "udp", "any"), 1 / 2),
      port: sometimes(portList, 1 / 3),
      // no process or interface section of its directions is accepted below such a rule: rare
      // where it judges outgoing connections too
      sourcePort: sometimes(sourcePortList, direction === "ingress" ? 1 / 6 : 1 / 12),
      interface: sometimes(interfaceSection, 1 / 2),
      process: sometimes(processSection, 1 / 4),
    }),
  );

type RuleSpec = typeof ruleSpec extends fc.Arbitrary<infer T> ? T : never;

/**
 * Process and interface sections where moat accepts them (src/policy/process-support.ts): on
 * rules judging outgoing connections, above the first such rule that needs the local address or
 * source port (connect(), where the socket hooks judge them, knows neither); on rules judging
 * incoming ones, above the first such rule that needs the source port (the tables that judge
 * them by process or interface have none). A process section on incoming connections comes with
 * `protocol: tcp` (the accept hook judges TCP only).
 */
function enforceable(rules: RuleSpec[]): RuleSpec[] {
  const needsLocal = (r: RuleSpec) => r.direction !== "ingress" && (r.local || r.sourcePort);
  const needsSport = (r: RuleSpec) => r.direction !== "egress" && r.sourcePort;
  const below = (first: number, i: number) => first >= 0 && i >= first;
  const firstLocal = rules.findIndex(needsLocal);
  const firstSport = rules.findIndex(needsSport);
  return rules.map((r, i) => {
    const egressOk = r.direction === "ingress" || !below(firstLocal, i);
    const ingressOk = r.direction === "egress" || !below(firstSport, i);
    if (!egressOk || !ingressOk) return { ...r, interface: undefined, process: undefined };
    return r.process && r.direction !== "egress" ? { ...r, protocol: "tcp" } : r;
  });
}

const policySpec = fc.record({
  mode: fc.constantFrom("prevent", "prevent", "detect"),
  ingress: fc.constantFrom("allow", "block"),
  egress: fc.constantFrom("allow", "block"),
  rules: fc.array(ruleSpec, { minLength: 1, maxLength: 8 }).map(enforceable),
});

type PolicySpec = typeof policySpec extends fc.Arbitrary<infer T> ? T : never;

function ruleLine(r: RuleSpec, i: number): string {
  const q = (v: unknown) => JSON.stringify(v);
  const parts = [`name: r${i}`, `direction: ${r.direction}`, `action: ${r.action}`];
  if (r.mode) parts.push(`mode: ${r.mode}`);
  if (r.log) parts.push("log: true");
  const l3: string[] = [];
  if (r.remote) l3.push(`remote: ${q(r.remote)}`);
  if (r.local) l3.push(`local: ${q(r.local)}`);
  if (l3.length > 0) parts.push(`layer3: { ${l3.join(", ")} }`);
  const l4: string[] = [];
  if (r.protocol) l4.push(`protocol: ${r.protocol}`);
  if (r.port) l4.push(`port: ${q(r.port)}`);
  if (r.sourcePort) l4.push(`source_port: ${q(r.sourcePort)}`);
  if (l4.length > 0) parts.push(`layer4: { ${l4.join(", ")} }`);
  if (r.interface) parts.push(`interface: ${q(r.interface)}`);
  if (r.process) parts.push(`process: ${q(r.process)}`);
  return `  - { ${parts.join(", ")} }`;
}

function policyText(spec: PolicySpec): string {
  return `version: 1
mode: ${spec.mode}
defaults: { ingress: ${spec.ingress}, egress: ${spec.egress} }
attach: { cgroup: / }
rules:
${spec.rules.map(ruleLine).join("\n")}
`;
}

/**
 * The links the route mirror knows: the loopback device under a name of its own, and one to three
 * others (the names all differ); `routeTo`: the link the mirror's default routes leave by (an
 * index into them), or none.
 */
const hostSpec = fc.record({
  names: fc.shuffledSubarray(NAMES, { minLength: 2, maxLength: 4 }),
  tunnels: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
  routeTo: fc.option(fc.nat(3), { nil: null }),
});

type HostSpec = typeof hostSpec extends fc.Arbitrary<infer T> ? T : never;

function linksOf(h: HostSpec): LinkInfo[] {
  return h.names.map((ifname, i) => ({
    ifindex: i === 0 ? LOOPBACK : 10 + i,
    ifname,
    kind: h.tunnels[i] ? "wireguard" : "",
    tunnel: h.tunnels[i]!,
  }));
}

/** Default routes of both families to one link: what the socket hooks would predict. */
function defaultRoutes(link: LinkInfo | undefined): { v4: RouteEntry[]; v6: RouteEntry[] } {
  if (!link) return { v4: [], v6: [] };
  const via = { prefixlen: 0, ifindex: link.ifindex, tunnel: link.tunnel, reject: false };
  return {
    v4: [{ ...via, addr: new Uint8Array(4), ifname: link.ifname }],
    v6: [{ ...via, addr: new Uint8Array(16), ifname: link.ifname }],
  };
}

function universeOf(h: HostSpec): ProcessUniverse {
  const links = linksOf(h);
  const route = h.routeTo === null ? undefined : links[h.routeTo % links.length];
  return {
    executables: [
      { dev: 1, ino: 100n, gen: 0, path: "/usr/bin/curl" },
      { dev: 1, ino: 101n, gen: 0, path: "/usr/bin/python3" },
    ],
    users: new Map([
      ["root", 0],
      ["nobody", 65534],
    ]),
    cgroups: [
      { id: 500n, path: "/", container: null },
      { id: 501n, path: "/system.slice/a.service", container: null },
    ],
    routes: { image: defaultRoutes(route), links, notes: [] },
  };
}

const packetSpec = fc.record({
  v6: fc.boolean(),
  protocol: fc.constantFrom("tcp" as const, "udp" as const),
  remote: fc.nat(REMOTES4.length - 1),
  local: fc.nat(LOCALS4.length - 1),
  /** The server's port: the remote's of a leaving packet, the local one's of an arriving one. */
  dport: fc.constantFrom(...PORTS),
  sport: fc.constantFrom(...SPORTS),
});

type PacketDice = typeof packetSpec extends fc.Arbitrary<infer T> ? T : never;

/** The program judging an arriving packet: XDP, or TC ingress where the policy asks for it. */
type IngressHook = "xdp" | "tc-ingress";

const arrivalSpec = fc.record({
  packet: packetSpec,
  hook: fc.constantFrom<IngressHook>("xdp", "xdp", "tc-ingress"),
});

type ArrivalDice = typeof arrivalSpec extends fc.Arbitrary<infer T> ? T : never;

/** The facts as the evaluator takes them: no process, passing `link`. */
function factsOf(d: PacketDice, direction: "egress" | "ingress", link: LinkInfo): ConnectionFacts {
  const leaving = direction === "egress";
  return {
    direction,
    family: d.v6 ? 6 : 4,
    protocol: d.protocol,
    local: { ip: (d.v6 ? LOCALS6 : LOCALS4)[d.local]!, port: leaving ? d.sport : d.dport },
    remote: { ip: (d.v6 ? REMOTES6 : REMOTES4)[d.remote]!, port: leaving ? d.dport : d.sport },
    process: null,
    interface: { name: link.ifname, tunnel: link.tunnel },
  };
}

/** The same facts with the process unknown: a process rule that may match defers the decision. */
function processUnknown(f: ConnectionFacts): ConnectionFacts {
  const out = { ...f };
  delete out.process;
  return out;
}

/** __sk_buff for ctx_in: the skb passes `ifindex`, forwarded if it came in by `cameInBy` (every
 * other field zero, as the kernel requires of those it does not take). */
function skbAt(ifindex: number, cameInBy = 0): Buffer {
  const ctx = Buffer.alloc(SKB_CTX_SIZE);
  ctx.writeUInt32LE(cameInBy, SKB_INGRESS_IFINDEX_AT);
  ctx.writeUInt32LE(ifindex, SKB_IFINDEX_AT);
  return ctx;
}

/** xdp_md for ctx_in: a frame of `length` bytes came in by `ifindex` (rx queue 0). */
function xdpArriving(ifindex: number, length: number): Buffer {
  const ctx = Buffer.alloc(XDP_CTX_SIZE);
  ctx.writeUInt32LE(length, XDP_DATA_END_AT);
  ctx.writeUInt32LE(ifindex, XDP_INGRESS_IFINDEX_AT);
  return ctx;
}

/** The first packet (a SYN, a datagram) from `from` to `to`. */
function firstPacket(f: ConnectionFacts, from: "local" | "remote", flags = "S"): Buffer {
  const to = from === "local" ? "remote" : "local";
  return packet({
    src: f[from].ip,
    dst: f[to].ip,
    proto: f.protocol as "tcp" | "udp",
    sport: f[from].port,
    dport: f[to].port,
    flags,
  });
}

/** The TC egress program's verdict for a packet leaving by the loopback device: one the host
 * forwards, or one it made. */
function leave(data: Buffer, made: "forwarded" | "here"): "pass" | "drop" {
  const cameInBy = made === "forwarded" ? FORWARDED_FROM : 0;
  const r = dp.tc.testRun({ data, ctx: skbAt(LOOPBACK, cameInBy) });
  assert.ok(r.retval === TC_ACT_OK || r.retval === TC_ACT_SHOT, `tc returned ${r.retval}`);
  return r.retval === TC_ACT_OK ? "pass" : "drop";
}

/** The verdict of `hook` for a packet coming in by the loopback device. */
function arrive(data: Buffer, hook: IngressHook): "pass" | "drop" {
  if (hook === "tc-ingress") {
    const r = dp.tcIngress.testRun({ data, ctx: skbAt(LOOPBACK) });
    assert.ok(r.retval === TC_ACT_OK || r.retval === TC_ACT_SHOT, `tc ingress: ${r.retval}`);
    return r.retval === TC_ACT_OK ? "pass" : "drop";
  }
  const r = dp.xdp.testRun({ data, ctx: xdpArriving(LOOPBACK, data.length) });
  assert.ok(r.retval === XDP_PASS || r.retval === XDP_DROP, `xdp returned ${r.retval}`);
  return r.retval === XDP_PASS ? "pass" : "drop";
}

/** SYNs passed undecided to the accept hook so far. */
function deferredSoFar(): bigint {
  return dp.counters().deferred.packets;
}

/**
 * The policy as XDP asks whether a process rule may decide an incoming SYN (bpf/include/accept.h):
 * the socket hooks' tables with a process class that every process rule of the packet's interface
 * matches, and without the client port, so that a source-port rule "may" match too
 * (a process section no process matches stands for that). Null: no rule for incoming connections
 * names a process, so XDP never asks.
 */
function acceptQuestion(spec: PolicySpec): PolicyModel | null {
  const incoming = (r: RuleSpec) => r.direction !== "egress";
  if (!spec.rules.some((r) => incoming(r) && r.process)) return null;
  const rules = spec.rules.map((r): RuleSpec => {
    if (!incoming(r)) return r;
    if (r.process) return r;
    if (r.sourcePort) return { ...r, sourcePort: undefined, process: { name: ["?"] } };
    return r;
  });
  return parsePolicy(policyText({ ...spec, rules }), "p.yaml");
}

/**
 * Each process rule alone, without its process section: a policy that rule decides exactly when
 * the rule's other sections match (then it would decide the packet if a process were known).
 */
function withoutProcesses(spec: PolicySpec): ReturnType<typeof parsePolicy>[] {
  return spec.rules
    .filter((r) => r.process)
    .map((r) =>
      parsePolicy(policyText({ ...spec, rules: [{ ...r, process: undefined }] }), "p.yaml"),
    );
}

/** What a failure report says of a case. */
function describeCase(
  facts: ConnectionFacts,
  universe: ProcessUniverse,
  host: HostSpec,
  text: string,
  expected: Evaluation,
): string {
  const links = universe.routes.links;
  const routed = host.routeTo === null ? null : links[host.routeTo % links.length]?.ifname;
  return `${JSON.stringify(facts)}\nlinks: ${JSON.stringify(links)}, default routes to ${JSON.stringify(routed ?? null)}\npolicy:\n${text}evaluator: ${expected.verdict} by ${expected.rule}: ${expected.reason}\nseed: ${SEED}`;
}

/** The verdict a decision gives a packet. */
function verdictOf(expected: Evaluation): "pass" | "drop" {
  return expected.verdict === "blocked" ? "drop" : "pass";
}

interface Loaded {
  text: string;
  model: PolicyModel;
  /** acceptQuestion() of the policy. */
  question: PolicyModel | null;
  universe: ProcessUniverse;
  host: HostSpec;
  /** The device the packets pass: the loopback device, under the universe's name for it. */
  link: LinkInfo;
}

/** A leaving first packet: its verdict and event are the evaluator's, no process known. */
function checkLeaving(p: Loaded, d: PacketDice, processRulesAlone: PolicyModel[]): void {
  const facts = factsOf(d, "egress", p.link);
  const expected = evaluate(p.model, facts);
  const where = describeCase(facts, p.universe, p.host, p.text, expected);
  assert.ok(expected.verdict !== "deferred", where);
  const got = leave(firstPacket(facts, "local"), "forwarded");
  dp.clearConntrack();
  assert.equal(got, verdictOf(expected), where);
  assert.deepEqual(events(), eventsOf(expected), `events: ${where}`);
  tally.cases++;
  if (expected.rule !== "default") tally.byRule++;
  if (p.model.rules.find((r) => r.name === expected.rule)?.interface) tally.byInterfaceRule++;
  if (got === "drop") tally.dropped++;
  if (expected.report) tally.reported++;
  if (processRulesAlone.some((m) => evaluate(m, facts).rule === "r0"))
    tally.processRuleWouldMatch++;
}

/**
 * An arriving first packet, then the local end's answer (which settles what no accept hook
 * completed): a SYN that a process rule could still decide is passed undecided, and one that XDP's
 * question rules out is not; the connection's verdict and event are the evaluator's, no process
 * known.
 */
function checkArriving(p: Loaded, a: ArrivalDice): void {
  const facts = factsOf(a.packet, "ingress", p.link);
  const expected = evaluate(p.model, facts);
  const where = `${a.hook}: ${describeCase(facts, p.universe, p.host, p.text, expected)}`;
  assert.ok(expected.verdict !== "deferred", where);
  const unknown = processUnknown(facts);
  const processMayDecide = evaluate(p.model, unknown).verdict === "deferred";
  const xdpMayAsk = !!p.question && evaluate(p.question, unknown).verdict === "deferred";
  const before = deferredSoFar();
  const first = arrive(firstPacket(facts, "remote"), a.hook);
  const deferred = deferredSoFar() > before;
  const answer = first === "pass" ? leave(firstPacket(facts, "local", "SA"), "here") : "drop";
  dp.clearConntrack();
  if (processMayDecide) assert.ok(deferred, `decided without the accept hook: ${where}`);
  if (deferred) assert.ok(xdpMayAsk, `deferred though no process rule may match: ${where}`);
  assert.equal(first, deferred ? "pass" : verdictOf(expected), `first packet: ${where}`);
  assert.equal(answer, verdictOf(expected), `answer: ${where}`);
  assert.deepEqual(events(), eventsOf(expected), `events: ${where}`);
  arrivals.cases++;
  const rule = p.model.rules.find((r) => r.name === expected.rule);
  if (rule?.interface) arrivals.byInterfaceRule++;
  if (rule?.layer4?.sourcePorts) arrivals.bySourcePortRule++;
  if (answer === "drop") arrivals.dropped++;
  if (expected.report) arrivals.reported++;
  if (processMayDecide) arrivals.deferred++;
  else if (deferred) arrivals.deferredNeedlessly++;
  if (a.hook === "tc-ingress") arrivals.tcIngress++;
  const processRules = p.model.rules.some((r) => r.process && r.direction !== "egress");
  if (!deferred && processRules && facts.protocol === "tcp") arrivals.decidedPastProcessRules++;
}

function check(
  spec: PolicySpec,
  host: HostSpec,
  leaving: PacketDice[],
  arriving: ArrivalDice[],
  foldLimit?: number,
): void {
  const text = policyText(spec);
  const universe = universeOf(host);
  // accepted as the daemon accepts it (what it refuses is never loaded), on this made-up host
  const accepted = acceptPolicyText(text, "p.yaml", {
    host: textOnlyHost,
    universe: () => universe,
    compile: { processFoldLimit: foldLimit },
  });
  const errors = accepted.diagnostics.filter((x) => x.severity !== "warning");
  assert.ok(accepted.policy, `refused:\n${errors.map((x) => x.message).join("\n")}\n${text}`);
  const { model, image } = accepted.policy;
  const { generation } = dp.apply(image);
  rulesOf.set(generation, image.packet.rules);
  dp.clearConntrack();
  events();
  const link = universe.routes.links[0]!;
  const loaded = { text, model, question: acceptQuestion(spec), universe, host, link };
  const processRulesAlone = withoutProcesses(spec);
  for (const d of leaving) checkLeaving(loaded, d, processRulesAlone);
  for (const a of arriving) checkArriving(loaded, a);
}

test("packets no socket owns are judged by the interface they pass, as the evaluator judges them with no process", () => {
  fc.assert(
    fc.property(
      policySpec,
      hostSpec,
      fc.array(packetSpec, { minLength: PACKETS, maxLength: PACKETS }),
      fc.array(arrivalSpec, { minLength: PACKETS, maxLength: PACKETS }),
      // the process classes' combination steps folded into one lookup, or none folded
      fc.constantFrom(undefined, 0),
      check,
    ),
    // no shrinking: the first counterexample is reported at once; FC_SEED and FC_PATH replay it
    {
      numRuns: POLICIES,
      endOnFailure: true,
      seed: SEED,
      ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
    },
  );
  // not vacuous: interface rules decide many packets, some of them dropped, and process rules
  // whose other sections match are passed over
  assert.ok(tally.byInterfaceRule >= 50, JSON.stringify(tally));
  assert.ok(tally.dropped >= 50, JSON.stringify(tally));
  assert.ok(tally.processRuleWouldMatch >= 20, JSON.stringify(tally));
  // arriving: the same, source-port rules deciding some, SYNs a process rule could decide
  // deferred and others decided at once under process rules, by both ingress programs
  assert.ok(arrivals.byInterfaceRule >= 25, JSON.stringify(arrivals));
  assert.ok(arrivals.dropped >= 50, JSON.stringify(arrivals));
  assert.ok(arrivals.deferred >= 20, JSON.stringify(arrivals));
  assert.ok(arrivals.decidedPastProcessRules >= 20, JSON.stringify(arrivals));
  assert.ok(arrivals.bySourcePortRule >= 10, JSON.stringify(arrivals));
  assert.ok(arrivals.tcIngress >= 500, JSON.stringify(arrivals));
});
