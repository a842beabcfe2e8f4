// Packets no socket record owns (a forwarded container packet, a packet socket's) are judged as
// the reference evaluator judges them with no process and the interface they leave by: random
// policies of egress rules with `interface` sections (name globs, tunnel true or false), rules
// with `process` sections (which never match such a packet), plain L3/L4 rules, rules naming local
// addresses or source ports, ingress and `any` rules, both actions and modes, and the defaults,
// compiled with a process universe whose route mirror gives the loopback device (ifindex 1, the
// device a test run's skb leaves by) a random name and tunnel flag, next to links the packets do
// not use (where the mirror's routes send them). x IPv4 and IPv6 TCP and UDP first packets through
// the TC egress program (BPF_PROG_TEST_RUN, __sk_buff.ifindex 1), one fresh connection each. The
// verdict (pass/drop) and the event (its type, rule and mode, or none) must be what evaluate()
// decides for { process: null, interface: { name, tunnel } }.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy, textOnlyHost } from "../../src/config/index.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";
import { acceptPolicyText } from "../../src/policy/accept-text.ts";
import type { ProcessUniverse } from "../../src/policy/compile/process.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import type { LinkInfo, RouteEntry } from "../../src/route/types.ts";
import { TC_ACT_OK, TC_ACT_SHOT } from "../helpers/kernel-lab.ts";
import { packet } from "../helpers/packets.ts";

const POLICIES = 40;
const PACKETS = 150;
/**
 * The loopback device: the device a test run's skb has when ctx_in names none or ifindex 1
 * (bpf_prog_test_run_skb), named here in ctx_in all the same.
 */
const LOOPBACK = 1;
/** sizeof(struct __sk_buff), and where its ifindex is. */
const SKB_CTX_SIZE = 192;
const SKB_IFINDEX_AT = 40;

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

before(() => {
  dp = Datapath.start({ interfaces: [], pinRoot: null });
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
  dp?.stop();
  console.log(`unowned interface property: ${JSON.stringify({ seed: SEED, ...tally })}`);
});

/** Events reported since the last call. */
function events(): MoatEvent[] {
  ring.drain();
  const out = pending;
  pending = [];
  return out;
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

const ruleSpec = fc.record({
  direction: fc.constantFrom("egress", "egress", "egress", "egress", "any", "ingress"),
  action: fc.constantFrom("allow", "block"),
  mode: sometimes(fc.constantFrom("detect", "prevent"), 1 / 3),
  log: fc.boolean(),
  remote: sometimes(addresses, 1 / 2),
  // rare: no process or interface section is accepted below such a rule
  local: sometimes(localAddresses, 1 / 12),
  protocol: sometimes(fc.constantFrom("tcp", "udp", "any"), 1 / 2),
  port: sometimes(portList, 1 / 3),
  sourcePort: sometimes(sourcePortList, 1 / 12),
  interface: sometimes(interfaceSection, 1 / 2),
  process: sometimes(processSection, 1 / 4),
});

type RuleSpec = typeof ruleSpec extends fc.Arbitrary<infer T> ? T : never;

/**
 * Process and interface sections where moat accepts them (src/policy/process-support.ts): on
 * egress rules above the first rule that needs the local address or source port (connect(),
 * where the socket hooks judge them, knows neither).
 */
function enforceable(rules: RuleSpec[]): RuleSpec[] {
  const needsLocal = (r: RuleSpec) => r.direction !== "ingress" && (r.local || r.sourcePort);
  const firstLocal = rules.findIndex(needsLocal);
  return rules.map((r, i) =>
    r.direction === "egress" && (firstLocal < 0 || i < firstLocal)
      ? r
      : { ...r, interface: undefined, process: undefined },
  );
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
  dport: fc.constantFrom(...PORTS),
  sport: fc.constantFrom(...SPORTS),
});

type PacketDice = typeof packetSpec extends fc.Arbitrary<infer T> ? T : never;

/** The egress packet's facts as the evaluator takes them: no process, leaving by `link`. */
function factsOf(d: PacketDice, link: LinkInfo): ConnectionFacts {
  return {
    direction: "egress",
    family: d.v6 ? 6 : 4,
    protocol: d.protocol,
    local: { ip: (d.v6 ? LOCALS6 : LOCALS4)[d.local]!, port: d.sport },
    remote: { ip: (d.v6 ? REMOTES6 : REMOTES4)[d.remote]!, port: d.dport },
    process: null,
    interface: { name: link.ifname, tunnel: link.tunnel },
  };
}

/** __sk_buff for ctx_in: the skb leaves by `ifindex` (every other field zero, as the kernel
 * requires of those it does not take). */
function skbLeavingBy(ifindex: number): Buffer {
  const ctx = Buffer.alloc(SKB_CTX_SIZE);
  ctx.writeUInt32LE(ifindex, SKB_IFINDEX_AT);
  return ctx;
}

/** The TC egress program's verdict for the first packet of a fresh connection. */
function runEgress(f: ConnectionFacts): "pass" | "drop" {
  const data = packet({
    src: f.local.ip,
    dst: f.remote.ip,
    proto: f.protocol as "tcp" | "udp",
    sport: f.local.port,
    dport: f.remote.port,
    flags: "S",
  });
  const r = dp.tc.testRun({ data, ctx: skbLeavingBy(LOOPBACK) });
  dp.clearConntrack();
  assert.ok(r.retval === TC_ACT_OK || r.retval === TC_ACT_SHOT, `tc returned ${r.retval}`);
  return r.retval === TC_ACT_OK ? "pass" : "drop";
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

function check(spec: PolicySpec, host: HostSpec, dice: PacketDice[], foldLimit?: number): void {
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
  const processRulesAlone = withoutProcesses(spec);
  for (const d of dice) {
    const facts = factsOf(d, link);
    const expected = evaluate(model, facts);
    const where = `${JSON.stringify(facts)}\nlinks: ${JSON.stringify(universe.routes.links)}, default routes to ${JSON.stringify(host.routeTo === null ? null : universe.routes.links[host.routeTo % universe.routes.links.length]?.ifname)}\npolicy:\n${text}evaluator: ${expected.verdict} by ${expected.rule}: ${expected.reason}\nseed: ${SEED}`;
    assert.ok(expected.verdict !== "deferred", where);
    const got = runEgress(facts);
    assert.equal(got, expected.verdict === "blocked" ? "drop" : "pass", where);
    assert.deepEqual(
      events().map((ev) => `${ev.type} ${ev.rule} ${ev.mode}`),
      expected.report ? [`${expected.verdict} ${expected.rule} ${expected.mode}`] : [],
      `events: ${where}`,
    );
    tally.cases++;
    if (expected.rule !== "default") tally.byRule++;
    if (model.rules.find((r) => r.name === expected.rule)?.interface) tally.byInterfaceRule++;
    if (got === "drop") tally.dropped++;
    if (expected.report) tally.reported++;
    if (processRulesAlone.some((m) => evaluate(m, facts).rule === "r0"))
      tally.processRuleWouldMatch++;
  }
}

test("packets no socket owns are judged by the interface they leave by, as the evaluator judges them with no process", () => {
  fc.assert(
    fc.property(
      policySpec,
      hostSpec,
      fc.array(packetSpec, { minLength: PACKETS, maxLength: PACKETS }),
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
});
