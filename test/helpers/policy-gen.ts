// Random L3/L4 policies (as YAML text, read by the real loader) and random first packets biased
// toward each policy's own boundaries, with the facts the reference evaluator takes.
import fc from "fast-check";
import { formatIp } from "../../src/config/ip.ts";
import type {
  AddressEntry,
  LocalDecision,
  PolicyModel,
  PortRange,
} from "../../src/config/model.ts";
import { DECISION_PROTOCOLS } from "../../src/config/decision.ts";
import type { ConnectionFacts } from "../../src/policy/evaluator.ts";
import type { PacketSpec } from "./packets.ts";

const V4_ANCHORS = [0x0a000000, 0x0a010200, 0xc0a80100, 0xcb007100, 0, 0xffffffff];
const V6_ANCHORS = [0x20010db8n << 96n, 0xfd00n << 112n, 0xfe80n << 112n, 0n, (1n << 128n) - 1n];

const v4 = fc
  .tuple(fc.constantFrom(...V4_ANCHORS), fc.integer({ min: -200, max: 200 }))
  .map(([a, d]) => (a + d) >>> 0);
const v6 = fc
  .tuple(fc.constantFrom(...V6_ANCHORS), fc.integer({ min: -200, max: 200 }))
  .map(([a, d]) => {
    const v = a + BigInt(d);
    return v < 0n ? 0n : v >= 1n << 128n ? (1n << 128n) - 1n : v;
  });
const v4Text = (v: number | bigint) => formatIp({ family: 4, value: BigInt(v) });
const v6Text = (v: bigint) => formatIp({ family: 6, value: v });

const target = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([v, l]) => `${v4Text(v)}/${l}`),
  },
  { weight: 2, arbitrary: v4.map(v4Text) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(v4, v4)
      .map(([a, b]) => `${v4Text(Math.min(a, b))}-${v4Text(Math.max(a, b))}`),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(v6, fc.integer({ min: 0, max: 128 })).map(([v, l]) => `${v6Text(v)}/${l}`),
  },
  { weight: 1, arbitrary: v6.map(v6Text) },
);
const entry = fc.tuple(fc.boolean(), target).map(([neg, t]) => (neg ? `!${t}` : t));
const list = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: entry },
    { weight: 1, arbitrary: fc.constantFrom("set:a0", "set:a1", "!set:a0") },
  ),
  { maxLength: 4 },
);

const port = fc.oneof(
  fc.constantFrom(0, 22, 53, 67, 68, 80, 443, 546, 547, 1024, 65535),
  fc.integer({ min: 0, max: 65535 }),
);
const portEntry: fc.Arbitrary<number | string> = fc.oneof(
  { weight: 3, arbitrary: port },
  {
    weight: 3,
    arbitrary: fc
      .tuple(port, fc.integer({ min: 0, max: 5000 }))
      .map(([lo, w]) => `${lo}-${Math.min(65535, lo + w)}`),
  },
  { weight: 1, arbitrary: fc.constant("set:p0") },
);
const ports = fc.array(portEntry, { minLength: 1, maxLength: 3 });

const PROTOCOLS = ["tcp", "udp", "icmp", "icmpv6", "any", 47, 132, 0, 2];

const layer4 = fc
  .record({
    protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: undefined }),
    port: fc.option(ports, { nil: undefined, freq: 2 }),
    sourcePort: fc.option(ports, { nil: undefined, freq: 4 }),
    icmp: fc.option(
      fc.record({
        type: fc.constantFrom(0, 3, 8, 128, 130, 134, 135, 136, 143),
        code: fc.option(fc.constantFrom(0, 1), { nil: undefined }),
      }),
      { nil: undefined },
    ),
  })
  .map((l4) => {
    const p = l4.protocol;
    const ported = p === undefined || p === "any" || p === "tcp" || p === "udp";
    const icmp = p === "icmp" || p === "icmpv6";
    const parts: string[] = [];
    if (p !== undefined) parts.push(`protocol: ${p}`);
    if (ported && l4.port) parts.push(`port: ${JSON.stringify(l4.port)}`);
    if (ported && l4.sourcePort) parts.push(`source_port: ${JSON.stringify(l4.sourcePort)}`);
    if (icmp && l4.icmp) {
      const code = l4.icmp.code === undefined ? "" : `, code: ${l4.icmp.code}`;
      parts.push(`icmp: { type: ${l4.icmp.type}${code} }`);
    }
    return `{ ${parts.join(", ")} }`;
  });

export const rule = fc.record({
  direction: fc.constantFrom("ingress", "egress", "any"),
  action: fc.constantFrom("allow", "block"),
  mode: fc.option(fc.constantFrom("detect", "prevent"), { nil: undefined }),
  log: fc.boolean(),
  remote: fc.option(list, { nil: undefined }),
  local: fc.option(list, { nil: undefined, freq: 3 }),
  layer4: fc.option(layer4, { nil: undefined, freq: 4 }),
});

export const policySpec = fc.record({
  mode: fc.constantFrom("detect", "prevent"),
  ingress: fc.constantFrom("allow", "block"),
  egress: fc.constantFrom("allow", "block"),
  sets: fc.tuple(
    fc.array(entry, { maxLength: 4 }),
    fc.array(entry, { minLength: 1, maxLength: 3 }),
  ),
  portSet: fc.array(port, { minLength: 1, maxLength: 3 }),
  rules: fc.array(rule, { maxLength: 8 }),
});

export type PolicySpec = typeof policySpec extends fc.Arbitrary<infer T> ? T : never;

export function policyText(spec: PolicySpec): string {
  const q = (v: unknown) => JSON.stringify(v);
  const lines = [
    "version: 1",
    `mode: ${spec.mode}`,
    `defaults: { ingress: ${spec.ingress}, egress: ${spec.egress} }`,
    "sets:",
    ...spec.sets.map((s, i) => `  a${i}: ${q(s)}`),
    `  p0: ${q(spec.portSet)}`,
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

/** The policy's own boundaries: interval ends and their neighbours, port range edges. */
export interface Edges {
  v4: bigint[];
  v6: bigint[];
  ports: number[];
  protocols: number[];
  icmp: number[];
}

export function edges(model: PolicyModel): Edges {
  const e: Edges = {
    v4: [0n, 0xffffffffn],
    v6: [0n, (1n << 128n) - 1n],
    // and basic networking's (network-basics.ts)
    ports: [0, 65535, 67, 68, 546, 547],
    protocols: [],
    icmp: [],
  };
  const addAddress = (entries: AddressEntry[]) => {
    for (const x of entries) {
      if (x.kind === "set") addAddress(x.entries);
      else if (x.kind === "interval") {
        const max = x.family === 4 ? 0xffffffffn : (1n << 128n) - 1n;
        const out = x.family === 4 ? e.v4 : e.v6;
        for (const v of [x.start, x.end, x.start - 1n, x.end + 1n])
          if (v >= 0n && v <= max) out.push(v);
      }
    }
  };
  const addPorts = (ranges: PortRange[] | undefined) => {
    for (const r of ranges ?? [])
      for (const p of [r.lo, r.hi, r.lo - 1, r.hi + 1]) if (p >= 0 && p <= 65535) e.ports.push(p);
  };
  for (const r of model.rules) {
    addAddress(r.layer3?.remote?.entries ?? []);
    addAddress(r.layer3?.local?.entries ?? []);
    addPorts(r.layer4?.ports);
    addPorts(r.layer4?.sourcePorts);
    if (r.layer4?.protocol != null) e.protocols.push(r.layer4.protocol);
    if (r.layer4?.icmp) e.icmp.push(r.layer4.icmp.type);
  }
  return e;
}

export const packetDice = fc.record({
  egress: fc.boolean(),
  protocol: fc.nat(20),
  family: fc.nat(11),
  remote: fc.tuple(fc.nat(3), fc.nat(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })),
  local: fc.tuple(fc.nat(3), fc.nat(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })),
  serverPort: fc.tuple(fc.nat(3), fc.nat(), fc.integer({ min: 0, max: 65535 })),
  clientPort: fc.tuple(fc.nat(3), fc.nat(), fc.integer({ min: 0, max: 65535 })),
  icmp: fc.tuple(fc.nat(), fc.nat(255), fc.nat(3)),
  hopLimit: fc.constantFrom(255, 255, 64, 1, 254),
});

export type PacketDice = typeof packetDice extends fc.Arbitrary<infer T> ? T : never;

export interface FirstPacket {
  hook: "xdp" | "tc";
  spec: PacketSpec;
  facts: ConnectionFacts;
}

/** IPv6 extension-header numbers cannot be an IPv6 packet's L4 protocol. */
const V6_EXT = new Set([0, 43, 44, 51, 60]);

export function firstPacket(e: Edges, d: PacketDice): FirstPacket {
  // ipv4; ipv6; and ipv4 as ipv4-mapped ipv6 (both addresses, or only one)
  const family: 4 | 6 = d.family < 4 ? 6 : 4;
  const mapped = d.family >= 10 ? (d.family === 10 ? "both" : "remote") : "none";
  const pick = ([how, i, random]: [number, number, bigint], fam: 4 | 6): bigint => {
    const list = fam === 4 ? e.v4 : e.v6;
    const v = how < 2 ? list[i % list.length]! : fam === 4 ? random & 0xffffffffn : random;
    // keep real ipv6 addresses out of the mapped block (that is the `mapped` case)
    return fam === 6 && v >> 32n === 0xffffn ? v ^ (1n << 100n) : v;
  };
  const pickPort = ([how, i, random]: [number, number, number]) =>
    how < 2 ? e.ports[i % e.ports.length]! : random;
  const protocols = [6, 17, 1, 58, 47, 132, 0, 2, 255, ...e.protocols];
  let protocol =
    d.protocol < 5 ? 6 : d.protocol < 9 ? 17 : protocols[d.protocol % protocols.length]!;
  const v6wire = family === 6 || mapped !== "none";
  if (v6wire && V6_EXT.has(protocol)) protocol = 47;
  const remote = pick(d.remote, family);
  // with one mapped address, the other is a real ipv6 address
  const local = mapped === "remote" ? pick(d.local, 6) : pick(d.local, family);
  const serverPort = pickPort(d.serverPort);
  const clientPort = pickPort(d.clientPort);
  const icmpTypes = [0, 2, 3, 8, 128, 129, 130, 133, 134, 135, 136, 137, 143, ...e.icmp];
  const icmpType = d.icmp[2] < 2 ? icmpTypes[d.icmp[0] % icmpTypes.length]! : d.icmp[0] % 256;
  const icmpCode = d.icmp[2] === 0 ? 0 : d.icmp[2] === 1 ? 1 : d.icmp[1];
  const direction = d.egress ? "egress" : "ingress";
  const remoteText =
    family === 6 ? v6Text(remote) : mapped === "none" ? v4Text(remote) : `::ffff:${v4Text(remote)}`;
  const localText =
    family === 6 || mapped === "remote"
      ? v6Text(local)
      : mapped === "both"
        ? `::ffff:${v4Text(local)}`
        : v4Text(local);
  // the packet builder takes plain hex ipv6 text; whether an address is mapped is the case's,
  // not its text's (a real ipv6 address such as ::ffff:ffff:ffff:ffff:ffff starts the same way)
  const wire = (isMapped: boolean, text: string, v: bigint) =>
    isMapped ? `::ffff:${hexTail(v)}` : text;
  const ported = protocol === 6 || protocol === 17;
  const icmp = protocol === 1 || protocol === 58;
  const withPort = (p: number) => (ported ? { port: p } : {});
  const facts: ConnectionFacts = {
    direction,
    protocol,
    family: v6wire ? 6 : 4,
    remote: { ip: remoteText, ...withPort(direction === "ingress" ? clientPort : serverPort) },
    local: { ip: localText, ...withPort(direction === "ingress" ? serverPort : clientPort) },
    ...(icmp ? { icmp: { type: icmpType, code: icmpCode } } : {}),
    hopLimit: d.hopLimit,
  };
  const r = wire(mapped !== "none", remoteText, remote);
  const l = wire(mapped === "both", localText, local);
  const spec: PacketSpec = {
    src: direction === "ingress" ? r : l,
    dst: direction === "ingress" ? l : r,
    proto: protocol,
    sport: clientPort,
    dport: serverPort,
    flags: "S",
    icmp: { type: icmpType, code: icmpCode },
    payload: ported || icmp ? 0 : 8,
    ttl: d.hopLimit,
  };
  return { hook: direction === "ingress" ? "xdp" : "tc", spec, facts };
}

function hexTail(v: bigint): string {
  return `${((v >> 16n) & 0xffffn).toString(16)}:${(v & 0xffffn).toString(16)}`;
}

/** A decision's remote by address: a host, a prefix, a range, now and then IPv4-mapped IPv6. */
export const decisionAddress: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: v4.map(v4Text) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(v4, fc.oneof(fc.integer({ min: 4, max: 16 }), fc.integer({ min: 0, max: 32 })))
      .map(([v, l]) => `${v4Text(v)}/${l}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(v4, v4)
      .map(([a, b]) => `${v4Text(Math.min(a, b))}-${v4Text(Math.max(a, b))}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(v6, fc.oneof(fc.integer({ min: 4, max: 32 }), fc.integer({ min: 0, max: 128 })))
      .map(([v, l]) => `${v6Text(v)}/${l}`),
  },
  { weight: 1, arbitrary: v6.map(v6Text) },
  // a queued IPv4 connection seen on a dual-stack socket
  { weight: 1, arbitrary: v4.map((v) => `::ffff:${v4Text(v)}`) },
);

/** What a decision may name besides its remote; the tests that model more say so. */
export interface DecisionChoices {
  remote: fc.Arbitrary<string>;
  directions?: readonly ("ingress" | "egress")[];
  protocols?: readonly ("tcp" | "udp" | "icmp" | "icmpv6")[];
  /** Server ports drawn now and then (tcp/udp only); otherwise any port 1-65535. */
  ports?: readonly number[];
  /** Executables a decision may name (process.path), for tests that model them. */
  paths?: readonly string[];
  maxLength?: number;
}

/** Lifetimes still in force: each as the store writes it (expires, boot). */
const LIFETIMES = [
  { lifetime: "once", expires: "2999-01-01T00:00:00.000Z" },
  { lifetime: "reboot", boot: "boot-1" },
  { lifetime: "forever" },
  { lifetime: "1h", expires: "2999-01-01T00:00:00.000Z" },
] as const;

/**
 * Random local decisions (src/config/decision.ts), ids in the order they were made, each one
 * that decisionProblems accepts.
 */
export function decisionsOf(c: DecisionChoices): fc.Arbitrary<LocalDecision[]> {
  const one = fc.record({
    action: fc.constantFrom("allow" as const, "block" as const),
    direction: fc.constantFrom(...(c.directions ?? (["ingress", "egress"] as const))),
    remote: c.remote,
    protocol: fc.option(fc.constantFrom(...(c.protocols ?? DECISION_PROTOCOLS)), {
      nil: undefined,
    }),
    port: fc.option(
      fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...(c.ports ?? [22, 53, 67, 80, 443, 547, 8080])) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 65535 }) },
      ),
      { nil: undefined, freq: 3 },
    ),
    path: c.paths?.length
      ? fc.option(fc.constantFrom(...c.paths), { nil: undefined })
      : fc.constant(undefined),
    lifetime: fc.constantFrom(...LIFETIMES),
  });
  return fc.array(one, { minLength: 1, maxLength: c.maxLength ?? 5 }).map((list) =>
    list.map((d, i): LocalDecision => {
      const ported = d.protocol === "tcp" || d.protocol === "udp";
      return {
        id: `p${i}`,
        action: d.action,
        direction: d.direction,
        remote: d.remote,
        ...(d.protocol ? { protocol: d.protocol } : {}),
        ...(d.port !== undefined && ported ? { port: d.port } : {}),
        ...(d.path ? { process: { path: d.path } } : {}),
        ...d.lifetime,
        created: "2026-12-01T00:00:00.000Z",
        by: "property",
      };
    }),
  );
}

/** Local decisions by address (what the packet hooks judge). */
export const decisionsSpec: fc.Arbitrary<LocalDecision[]> = decisionsOf({
  remote: decisionAddress,
});

/** The lifetimes in force, as a person asks for them (`moat decisions add --lifetime`). */
export const decisionLifetimes: readonly string[] = LIFETIMES.map((l) => l.lifetime);
