// The SYN flood defence's maps (bpf/include/syncookie.h, docs/policy.md "flood"): the defended
// ports written with each policy, the cookies' key written at start, and what the kernel counted
// and the ports' attack state, read for counters and the attack events.
import { randomBytes } from "node:crypto";
import {
  Direction,
  EventType,
  FloodCounter,
  FloodOn,
  Mode,
  Reason,
  RULE_NONE,
  event as eventCodec,
  floodPort as portCodec,
  floodState as stateCodec,
  floodUdp as udpCodec,
  floodIcmp as icmpCodec,
  limitKey as limitKeyCodec,
  limitState as limitStateCodec,
  LimitKeyFlag,
  type FloodCounterName,
} from "./abi.ts";
import { encodeLimit } from "./table-maps.ts";
import { forgetAfter } from "./limit-maps.ts";
import type { BpfMap, BpfObject } from "./native.d.ts";
import type { ClassifierImage } from "../policy/compile/image.ts";

export type SynFloodImage = NonNullable<ClassifierImage["synFlood"]>;
export type UdpAmplificationImage = NonNullable<ClassifierImage["udpAmplification"]>;
export type FloodCounters = Record<FloodCounterName, bigint>;

/** A defended port's attack state, as the kernel keeps it (times: CLOCK_MONOTONIC ns). */
export interface PortAttack {
  /** The port (0: every port without its own entry). */
  port: number;
  sinceNs: bigint;
  untilNs: bigint;
  syns: bigint;
  over: bigint;
}

const u32Key = (n: number) => {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(n);
  return k;
};

export class FloodMaps {
  private readonly ports: BpfMap;
  private readonly state: BpfMap;
  private readonly counterMap: BpfMap;
  private readonly udp: BpfMap;
  private readonly udpPorts: BpfMap;
  private readonly udpState: BpfMap;
  private readonly icmp: BpfMap;
  private readonly on: BpfMap;
  /** The live policy's defences (FloodOn bits), as flood_on holds them. */
  private onBits = 0;
  /** The live amplification limit's idle time after which a source's state is forgotten. */
  private udpIdleNs = 0n;
  /** The live amplification limit drops (prevent) rather than reports only (detect). */
  private udpPrevent = false;

  constructor(object: BpfObject) {
    this.ports = object.map("flood_ports");
    this.state = object.map("flood_state");
    this.counterMap = object.map("flood_counters");
    this.udp = object.map("flood_udp");
    this.udpPorts = object.map("flood_udp_ports");
    this.udpState = object.map("flood_udp_state");
    this.icmp = object.map("flood_icmp");
    this.on = object.map("flood_on");
    // a key of this daemon's own: cookies of another run never check
    const secret = object.map("flood_secret");
    try {
      secret.update(u32Key(0), randomBytes(16));
    } finally {
      secret.close();
    }
  }

  /** The defended ports of a policy going live (none: the defence is off). */
  apply(flood: SynFloodImage | undefined): void {
    const want = new Map<number, Buffer>();
    if (flood) {
      const value = portCodec.encode({
        period_ns: flood.periodNs,
        hold_ns: flood.holdNs,
        syn_burst: flood.burst,
        mode: flood.prevent ? Mode.prevent : Mode.detect,
      });
      for (const port of flood.ports.length ? flood.ports : [0]) want.set(port, value);
    }
    for (const key of this.keys(this.ports))
      if (!want.has(key.readUInt32LE(0))) this.ports.delete(key);
    for (const [port, value] of want) this.ports.update(u32Key(port), value);
    this.setOn(FloodOn.syn, want.size > 0);
    // a port no longer defended forgets its attack
    for (const key of this.keys(this.state))
      if (!want.has(key.readUInt32LE(0))) this.state.delete(key);
  }

  /**
   * The UDP amplification limit of a policy going live (none: off). A changed limit starts its
   * sources afresh (a new id); the ports are written before the limit, removed after it.
   */
  applyUdp(amp: UdpAmplificationImage | undefined): void {
    const l = amp?.limit;
    const value = Buffer.alloc(udpCodec.size);
    if (amp && l) {
      // per source port; no lease: every packet asks the shared state
      encodeLimit(l, { perPort: true, lease: 1 }, value);
      udpCodec.encode({ mode: amp.prevent ? Mode.prevent : Mode.detect }, value);
      this.udpIdleNs = forgetAfter(l);
      this.udpPrevent = amp.prevent;
    }
    const want = new Set(amp?.ports ?? []);
    for (const port of want) this.udpPorts.update(u32Key(port), Buffer.from([1]));
    this.udp.update(u32Key(0), value);
    this.setOn(FloodOn.udp, want.size > 0);
    for (const key of this.keys(this.udpPorts))
      if (!want.has(key.readUInt32LE(0))) this.udpPorts.delete(key);
    // sources of another limit (the old id) are gone with it
    for (const key of this.keys(this.udpState))
      if (!l || key.readUInt32LE(0) !== l.id) this.udpState.delete(key);
    // the bucket the sources share when the table is full, there before they need it
    if (l) {
      const key = limitKeyCodec.encode({ id: l.id, flags: LimitKeyFlag.overflow });
      if (!this.udpState.lookup(key)) this.udpState.update(key, Buffer.alloc(limitStateCodec.size));
    }
  }

  /** Turns a defence's bit in flood_on on or off (its maps are written before it goes on). */
  private setOn(bit: number, on: boolean): void {
    const bits = on ? this.onBits | bit : this.onBits & ~bit;
    if (bits === this.onBits) return;
    const value = Buffer.alloc(4);
    value.writeUInt32LE(bits);
    this.on.update(u32Key(0), value);
    this.onBits = bits;
  }

  /** The oversized ICMP limit of a policy going live (none: off). */
  applyIcmp(icmp: ClassifierImage["icmpFlood"]): void {
    const value = icmpCodec.encode({
      max_size: icmp?.maxSize ?? 0,
      mode: icmp?.prevent ? Mode.prevent : Mode.detect,
    });
    this.icmp.update(u32Key(0), value);
  }

  /**
   * Removes the state of sources idle long enough to count as new (`nowNs`: CLOCK_MONOTONIC). A
   * source's datagrams over the limit since its last report (the kernel reports at the next one
   * over it, which an idle source does not send) go to `report` as the kernel's report would.
   */
  sweepUdp(nowNs: bigint, report?: (record: Buffer) => void): number {
    // batch lookups, each source's last time read in place: a flood's 65,536 sources took 1.1 s
    // a sweep with a lookup a key, ~50 ms this way
    const { keySize, valueSize } = this.udpState;
    const lastAt = limitStateCodec.fields.last_ns.offset;
    const overAt = limitStateCodec.fields.over.offset;
    const idle: { key: Buffer; over: bigint }[] = [];
    let cursor: Buffer | null = null;
    do {
      const batch = this.udpState.lookupBatch(cursor, 4096);
      for (let i = 0; i < batch.count; i++) {
        const key = batch.keys.subarray(i * keySize, (i + 1) * keySize);
        if (key[6]) continue; // the overflow bucket
        const last = batch.values.readBigUInt64LE(i * valueSize + lastAt);
        const over = batch.values.readBigUInt64LE(i * valueSize + overAt);
        if (nowNs - last > this.udpIdleNs) idle.push({ key: Buffer.from(key), over });
      }
      cursor = batch.next;
    } while (cursor);
    let removed = 0;
    for (const { key, over } of idle) {
      if (!this.udpState.delete(key)) continue;
      removed += 1;
      if (over > 0n) report?.(this.udpTailRecord(key, over, nowNs));
    }
    return removed;
  }

  /** The report of a swept source's datagrams over the amplification limit, as amp_over writes
   * it: the source (address and port, per port as the limit is); what only a datagram tells (the
   * local address and port, the interface) is 0. */
  private udpTailRecord(key: Buffer, over: bigint, nowNs: bigint): Buffer {
    const addr = key.subarray(limitKeyCodec.fields.addr.offset);
    const mapped = addr.readBigUInt64BE(0) === 0n && addr.readUInt32BE(8) === 0xffff;
    const type = this.udpPrevent ? EventType.blocked : EventType.detected;
    return eventCodec.encode({
      ts_ns: nowNs,
      packets: over,
      remote: Buffer.from(addr),
      remote_port: key.readUInt16LE(limitKeyCodec.fields.port.offset),
      rule: RULE_NONE,
      type,
      family: mapped ? 4 : 6,
      protocol: 17,
      direction: Direction.ingress,
      mode: this.udpPrevent ? Mode.prevent : Mode.detect,
      verdict: type,
      reason: Reason.udpAmplification,
    });
  }

  /** The kernel's counts, all CPUs added up. */
  counters(): FloodCounters {
    const out = {} as FloodCounters;
    for (const [name, index] of Object.entries(FloodCounter) as [
      FloodCounterName | "max",
      number,
    ][]) {
      if (name === "max") continue;
      const value = this.counterMap.lookup(u32Key(index));
      let sum = 0n;
      for (let cpu = 0; value && cpu < this.counterMap.valuesPerKey; cpu++)
        sum += value.readBigUInt64LE(cpu * 8);
      out[name] = sum;
    }
    return out;
  }

  /** Every defended port that has seen a SYN. */
  attacks(): PortAttack[] {
    const out: PortAttack[] = [];
    for (const key of this.keys(this.state)) {
      const raw = this.state.lookup(key);
      if (!raw) continue;
      const s = stateCodec.decode(raw);
      out.push({
        port: key.readUInt32LE(0),
        sinceNs: s.since_ns,
        untilNs: s.until_ns,
        syns: s.syns,
        over: s.over,
      });
    }
    return out;
  }

  private keys(map: BpfMap): Buffer[] {
    const keys: Buffer[] = [];
    for (let k = map.nextKey(null); k; k = map.nextKey(k)) keys.push(k);
    return keys;
  }

  close(): void {
    this.ports.close();
    this.state.close();
    this.counterMap.close();
    this.udp.close();
    this.udpPorts.close();
    this.udpState.close();
    this.icmp.close();
    this.on.close();
  }
}
