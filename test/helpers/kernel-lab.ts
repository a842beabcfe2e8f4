// moat.bpf.o loaded without attaching, driven with BPF_PROG_TEST_RUN: apply a policy (YAML ->
// parsePolicy -> compile -> apply), run frames through the XDP or TC program, read the verdict,
// the events and the counters. For test/bpf/*.test.ts.
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import type { ClassifierImage } from "../../src/policy/compile/image.ts";
import { Datapath, type Counters, type DatapathOptions } from "../../src/datapath/datapath.ts";
import type { CounterName } from "../../src/datapath/abi.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { RingBuffer } from "../../src/datapath/native.d.ts";
import { packet, type PacketSpec } from "./packets.ts";
import { anchorXdp, type XdpAnchor } from "./xdp-anchor.ts";

export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** xdp and tc-ingress judge what arrives, tc what leaves. */
export type HookName = "xdp" | "tc" | "tc-ingress";
export type Verdict = "pass" | "drop" | "tx";

const verdicts: Record<HookName, Record<number, Verdict>> = {
  xdp: { [XDP_PASS]: "pass", [XDP_DROP]: "drop", [XDP_TX]: "tx" },
  tc: { [TC_ACT_OK]: "pass", [TC_ACT_SHOT]: "drop" },
  // redirected: sent back out of the interface it came in by (a SYN flood cookie)
  "tc-ingress": { [TC_ACT_OK]: "pass", [TC_ACT_SHOT]: "drop", [TC_ACT_REDIRECT]: "tx" },
};

export interface RunResult {
  verdict: Verdict;
  retval: number;
  /** The frame after the program (a reset built in place, for example). */
  data: Buffer;
  duration: number;
}

export class KernelLab {
  readonly dp: Datapath;
  private readonly ring: RingBuffer;
  private readonly flowRing: RingBuffer;
  private readonly images = new Map<number, ClassifierImage>();
  private pending: MoatEvent[] = [];
  private readonly anchor: XdpAnchor;

  constructor(options: Partial<DatapathOptions> = {}) {
    // test runs need no socket hooks unless a cgroup is given: half the verifier's work spared
    this.dp = Datapath.start({
      interfaces: [],
      pinRoot: null,
      socketHooks: options.cgroup !== undefined,
      ...options,
    });
    this.anchor = anchorXdp(this.dp.xdp);
    const push = (record: Buffer) =>
      this.pending.push(
        decodeEvent(record, {
          bootTimeMs: 0,
          rule: (index, generation) => this.images.get(generation)?.rules[index],
          interfaceName: () => null,
        }),
      );
    this.ring = this.dp.subscribe(push);
    // the flow records' ring: closes of connections whose opening was not reported
    this.flowRing = this.dp.subscribeFlows(push);
  }

  /** A lab with `yaml` applied. */
  static withPolicy(yaml: string): KernelLab {
    const lab = new KernelLab();
    lab.policy(yaml);
    return lab;
  }

  /** Forgets tracked connections and the events not read yet: where each test starts from. */
  forget(): void {
    this.dp.clearConntrack();
    this.events();
  }

  /** Compiles and applies a policy; forgets tracked connections and pending events. */
  policy(yaml: string, options: { keepConntrack?: boolean } = {}): ClassifierImage {
    const image = compile(parsePolicy(yaml, "test.yaml"));
    this.apply(image, options);
    return image;
  }

  apply(image: ClassifierImage, options: { keepConntrack?: boolean } = {}): number {
    const { generation } = this.dp.apply({ packet: image });
    this.images.set(generation, image);
    if (!options.keepConntrack) this.dp.clearConntrack();
    this.events();
    return generation;
  }

  run(hook: HookName, frame: Buffer | PacketSpec, repeat = 1): RunResult {
    const data = Buffer.isBuffer(frame) ? frame : packet(frame);
    const program = { xdp: this.dp.xdp, tc: this.dp.tc, "tc-ingress": this.dp.tcIngress }[hook];
    const r = program.testRun({ data, repeat });
    const verdict = verdicts[hook][r.retval];
    assert.ok(verdict, `${hook} returned ${r.retval}`);
    return { verdict, retval: r.retval, data: r.dataOut, duration: r.duration };
  }

  /** Events the rings delivered on their own since the last events() (no drain asked). */
  delivered(): readonly MoatEvent[] {
    return this.pending;
  }

  /** Events reported since the last call. */
  events(): MoatEvent[] {
    this.ring.drain();
    this.flowRing.drain();
    const out = this.pending;
    this.pending = [];
    return out;
  }

  counters(): Counters {
    return this.dp.counters();
  }

  /** Packet-count differences between two counter snapshots, for the names given. */
  static delta(
    before: Counters,
    after: Counters,
    names: CounterName[],
  ): Partial<Record<CounterName, number>> {
    const out: Partial<Record<CounterName, number>> = {};
    for (const n of names) out[n] = Number(after[n].packets - before[n].packets);
    return out;
  }

  close(): void {
    this.anchor.release();
    this.dp.stop();
  }
}
