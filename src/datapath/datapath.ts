// Loads moat's BPF objects, attaches them to the chosen interfaces, pins the links so the
// policy outlives a crashed daemon, and detaches everything on stop().
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Counter, lpm4Key, lpm6Key } from "./abi.ts";
import { ensureDir, PIN_ROOT, removeTree } from "./bpffs.ts";
import { native } from "./addon.ts";
import type { BpfLink, BpfMap, BpfObject, RingBuffer, XdpMode } from "./native.d.ts";
import type { NetInterface } from "./interfaces.ts";
import { records } from "./ringbuf-batch.ts";

const objectsDir = fileURLToPath(new URL("../../build/bpf/", import.meta.url));

export interface Attachment {
  program: string;
  hook: "xdp" | "tc-egress";
  interface: string;
  ifindex: number;
  /** "native"/"generic" for XDP; "tcx"/"tc" for TC */
  mode: string;
  linkId: number;
  pin: string | null;
}

export interface DatapathOptions {
  interfaces: NetInterface[];
  /** Where links are pinned; null disables pinning (tests). */
  pinRoot?: string | null;
  xdpMode?: XdpMode;
}

interface Loaded {
  object: BpfObject;
  file: string;
}

function loadObject(file: string): Loaded {
  const path = `${objectsDir}${file}`;
  if (!existsSync(path)) {
    throw Object.assign(new Error(`${path} is missing; run 'make build' first.`), {
      code: "ENOBPFOBJ",
    });
  }
  const object = native().BpfObject.open(path);
  object.load();
  return { object, file };
}

export class Datapath {
  readonly attachments: Attachment[] = [];
  readonly objects: { file: string; programs: string[] }[] = [];
  private readonly links: BpfLink[] = [];
  private readonly loaded: Loaded[] = [];
  private rings: RingBuffer[] = [];
  private readonly pinRoot: string | null;
  private readonly ingress: BpfObject;
  private readonly egress: BpfObject;

  private constructor(options: DatapathOptions) {
    this.pinRoot = options.pinRoot === undefined ? PIN_ROOT : options.pinRoot;
    const ingress = loadObject("xdp_ingress.bpf.o");
    const egress = loadObject("tc_egress.bpf.o");
    this.loaded.push(ingress, egress);
    this.ingress = ingress.object;
    this.egress = egress.object;
    for (const { object, file } of this.loaded) {
      this.objects.push({ file, programs: object.programs().map((p) => p.name) });
    }
  }

  /** Loads and attaches; on any failure detaches what was attached and rethrows. */
  static start(options: DatapathOptions): Datapath {
    const dp = new Datapath(options);
    try {
      if (dp.pinRoot) {
        removeTree(dp.pinRoot); // links left by a daemon that died: this one takes over
        ensureDir(dp.pinRoot);
      }
      for (const nic of options.interfaces) dp.attachInterface(nic, options.xdpMode ?? "auto");
      return dp;
    } catch (err) {
      dp.stop();
      throw err;
    }
  }

  private attachInterface(nic: NetInterface, xdpMode: XdpMode): void {
    const xdp = this.ingress.program("moat_xdp_ingress");
    const [xdpLink, mode] = this.attachXdp(xdp.attachXdp.bind(xdp), nic, xdpMode);
    this.track(xdpLink, { program: xdp.name, hook: "xdp", mode, ...this.where(nic) });
    const tc = this.egress.program("moat_tc_egress");
    const tcLink = tc.attachTc(nic.ifindex, "egress");
    this.track(tcLink, {
      program: tc.name,
      hook: "tc-egress",
      mode: tcLink.kind,
      ...this.where(nic),
    });
  }

  private where(nic: NetInterface) {
    return { interface: nic.name, ifindex: nic.ifindex };
  }

  /** "auto" tries native XDP first, then generic (veth without a peer program, old drivers). */
  private attachXdp(
    attach: (ifindex: number, mode: XdpMode) => BpfLink,
    nic: NetInterface,
    mode: XdpMode,
  ): [BpfLink, string] {
    if (mode !== "auto") return [attach(nic.ifindex, mode), mode];
    try {
      return [attach(nic.ifindex, "native"), "native"];
    } catch {
      return [attach(nic.ifindex, "generic"), "generic"];
    }
  }

  private track(link: BpfLink, a: Omit<Attachment, "linkId" | "pin">): void {
    this.links.push(link);
    let pin: string | null = null;
    if (this.pinRoot && link.fd >= 0) {
      pin = `${this.pinRoot}/link_${a.hook}_${a.interface}`;
      link.pin(pin);
    }
    this.attachments.push({ ...a, linkId: link.id(), pin });
  }

  /** Blocks traffic to `prefix` (foundation deny list; replaced by the policy tables). */
  denyDestination(address: Buffer, prefixlen: number): void {
    this.denyMap(address).update(this.denyKey(address, prefixlen), Buffer.from([1]));
  }

  allowDestination(address: Buffer, prefixlen: number): boolean {
    return this.denyMap(address).delete(this.denyKey(address, prefixlen));
  }

  private denyMap(address: Buffer): BpfMap {
    return this.ingress.map(address.length === 4 ? "deny_v4" : "deny_v6");
  }

  private denyKey(address: Buffer, prefixlen: number): Buffer {
    const codec = address.length === 4 ? lpm4Key : lpm6Key;
    return codec.encode({ prefixlen, addr: address });
  }

  /** Packet counters summed over CPUs and both hooks. */
  counters(): Record<keyof typeof Counter, bigint> {
    const out = {} as Record<keyof typeof Counter, bigint>;
    for (const [name, index] of Object.entries(Counter) as [keyof typeof Counter, number][]) {
      out[name] = 0n;
      if (index >= Counter.max) continue;
      const key = Buffer.alloc(4);
      key.writeUInt32LE(index);
      for (const object of [this.ingress, this.egress]) {
        const map = object.map("counters");
        const value = map.lookup(key);
        if (!value) continue;
        for (let cpu = 0; cpu < map.valuesPerKey; cpu++)
          out[name] += value.readBigUInt64LE(cpu * 8);
      }
    }
    return out;
  }

  /** Delivers every event record (a copy) to `onRecord`. */
  subscribe(onRecord: (record: Buffer) => void): void {
    const ring = new (native().RingBuffer)(this.ingress.map("events"), (batch) => {
      for (const record of records(batch)) onRecord(record);
    });
    this.rings.push(ring);
  }

  /** Detaches every link, removes pins, unloads objects. Safe to call twice. */
  stop(): void {
    for (const ring of this.rings) ring.close();
    this.rings = [];
    for (const link of this.links.splice(0)) {
      try {
        link.unpin();
      } catch {
        // not pinned
      }
      link.destroy();
    }
    if (this.pinRoot) removeTree(this.pinRoot);
    for (const { object } of this.loaded.splice(0)) object.close();
  }
}
