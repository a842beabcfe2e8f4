// The kernel's table walk, in TypeScript: what the XDP/TC programs do with a ClassifierImage, so
// the compiler is tested against the reference evaluator without a kernel.

import type { Action, Mode } from "../../config/model.ts";
import {
  DIRECTION_INDEX,
  RULE_NONE,
  portIndex,
  sportIndex,
  type ClassifierImage,
  type LpmEntry,
  type PacketFacts,
} from "./image.ts";
import { dir4Lookup } from "./dir4.ts";
import { basicsClassOf, type BasicsClass } from "../network-basics.ts";
import { SLOT_ICMP, SLOT_ICMPV6, SLOT_OTHER, isPorted, protocolSlot } from "./ports.ts";

/** Longest-prefix match over one trie's entries: prefix length (longest first) -> key -> class. */
interface Trie {
  lengths: number[];
  byLength: Map<number, Map<bigint, number>>;
  bits: number;
}

interface Prepared {
  remote6: Trie;
  local6: Trie;
  /** r * ny + y -> rule */
  remoteY: Map<number, number>;
}

const prepared = new WeakMap<ClassifierImage, Prepared>();

const u32 = (b: Uint8Array): number => ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;

function toBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function trie(entries: LpmEntry[], bits: number): Trie {
  const byLength = new Map<number, Map<bigint, number>>();
  for (const e of entries) {
    let level = byLength.get(e.prefixlen);
    if (!level) byLength.set(e.prefixlen, (level = new Map()));
    level.set(toBigint(e.addr) >> BigInt(bits - e.prefixlen), e.cls);
  }
  return { lengths: [...byLength.keys()].sort((a, b) => b - a), byLength, bits };
}

function lpmLookup(t: Trie, address: Uint8Array): number {
  const value = toBigint(address);
  for (const length of t.lengths) {
    const cls = t.byLength.get(length)!.get(value >> BigInt(t.bits - length));
    if (cls !== undefined) return cls;
  }
  return 0;
}

function prepare(image: ClassifierImage): Prepared {
  let p = prepared.get(image);
  if (!p) {
    const remoteY = new Map<number, number>();
    const { r, y, rule } = image.remoteY;
    for (let k = 0; k < r.length; k++) remoteY.set(r[k]! * image.ny + y[k]!, rule[k]!);
    p = {
      remote6: trie(image.remote6, 128),
      local6: trie(image.local6, 128),
      remoteY,
    };
    prepared.set(image, p);
  }
  return p;
}

/** The port-dimension value of a packet: server port, ICMP type << 8 | code, or the protocol. */
export function portValue(facts: PacketFacts): number {
  const slot = protocolSlot(facts.protocol);
  if (slot === SLOT_ICMP || slot === SLOT_ICMPV6) return (facts.icmpType << 8) | facts.icmpCode;
  if (slot === SLOT_OTHER) return facts.protocol;
  return facts.serverPort;
}

/** The rule index (into image.rules) that decides a new connection: ten table lookups. */
export function lookupImage(image: ClassifierImage, facts: PacketFacts): number {
  const p = prepare(image);
  const dir = DIRECTION_INDEX[facts.direction];
  const v4 = facts.family === 4;
  const rc = v4 ? dir4Lookup(image.remote4, u32(facts.remote)) : lpmLookup(p.remote6, facts.remote);
  const lc = v4 ? dir4Lookup(image.local4, u32(facts.local)) : lpmLookup(p.local6, facts.local);
  const ported = isPorted(facts.protocol);
  const pc = image.portClass[portIndex(dir, protocolSlot(facts.protocol), portValue(facts))]!;
  const sc = image.sportClass[sportIndex(ported, facts.clientPort)]!;
  const x = image.lx[lc * image.ns + sc]!;
  const y = image.px[pc * image.nx + x]!;
  const r1 = p.remoteY.get(rc * image.ny + y) ?? RULE_NONE;
  const r2 = image.anyRemote[y]!;
  const r3 = image.remoteOnly[rc * 2 + dir]!;
  const rule = Math.min(r1, r2, r3);
  return rule === RULE_NONE ? image.defaultRule[facts.direction] : rule;
}

/**
 * The step before the table walk (bpf/include/basics.h): the class of basic networking these facts
 * are (`family` is the one on the wire), when the image leaves it unjudged (no rule names it); such
 * a packet passes, never reported.
 */
export function imageBasics(image: ClassifierImage, facts: PacketFacts): BasicsClass | undefined {
  const ingress = facts.direction === "ingress";
  const ported = isPorted(facts.protocol);
  const c = basicsClassOf({
    family: facts.family,
    protocol: facts.protocol,
    localPort: ported ? (ingress ? facts.serverPort : facts.clientPort) : undefined,
    remotePort: ported ? (ingress ? facts.clientPort : facts.serverPort) : undefined,
    icmpType: facts.icmpType,
    hopLimit: facts.hopLimit,
  });
  return c && !((image.basicsJudged >> c.bit) & 1) ? c : undefined;
}

/** What a rule decides, as the evaluator's Decision says it. */
export interface ImageDecision {
  verdict: "allowed" | "blocked" | "detected";
  action: Action;
  /** The rule's name, or "default". */
  rule: string;
  mode: Mode;
  /** Whether an event is reported: always for blocks and detections, for allows with `log`. */
  report: boolean;
  /** An allowed TCP connection is reset after this many seconds; 0 = never. */
  maxDurationSeconds: number;
}

export function imageDecision(image: ClassifierImage, rule: number): ImageDecision {
  const r = image.rules[rule];
  if (!r)
    throw new RangeError(`rule index ${rule} is not in the image (${image.rules.length} rules)`);
  const verdict = r.action === "allow" ? "allowed" : r.mode === "prevent" ? "blocked" : "detected";
  return {
    verdict,
    action: r.action,
    rule: r.name,
    mode: r.mode,
    report: verdict !== "allowed" || r.log,
    maxDurationSeconds: r.maxDurationSeconds,
  };
}

/** lookupImage then imageDecision. */
export function classify(image: ClassifierImage, facts: PacketFacts): ImageDecision {
  return imageDecision(image, lookupImage(image, facts));
}
