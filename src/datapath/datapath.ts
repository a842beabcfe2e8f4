// Loads moat.bpf.o, attaches its XDP (ingress) and TC (egress) programs to the chosen
// interfaces, pins the links so the policy outlives a crashed daemon, writes compiled policies
// atomically, reads counters, events and the connection table, and detaches on stop().
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  counter as counterCodec,
  counters as countersCodec,
  Counter,
  owner as ownerCodec,
  type CounterName,
} from "./abi.ts";
import { ensureDir, PIN_ROOT, removeTree } from "./bpffs.ts";
import { native } from "./addon.ts";
import { clearConntrack, conntrackEntries, type ConntrackEntry } from "./conntrack.ts";
import { PolicyMaps, type ApplyResult, type RuleCounter } from "./policy-maps.ts";
import type {
  BpfLink,
  BpfMap,
  BpfObject,
  BpfProgram,
  CgroupAttach,
  RingBuffer,
  XdpMode,
} from "./native.d.ts";
import type { NetInterface } from "./interfaces.ts";
import type { SocketOwner } from "../attribution/listeners.ts";
import { unsupportedLink } from "./link-type.ts";
import type { ClassifierImage } from "../policy/compile/image.ts";
import type { RedirectTarget } from "../policy/compile/redirect.ts";
import type { OriginalDestination, SocketAddress } from "./redirect-maps.ts";
import { records } from "./ringbuf-batch.ts";

const objectsDir = fileURLToPath(new URL("../../build/bpf/", import.meta.url));
export const OBJECT_FILE = "moat.bpf.o";

/** The socket-hook programs of moat.bpf.o and where each attaches (with the post-route check). */
const SOCKET_HOOKS: [string, CgroupAttach][] = [
  ["moat_connect4", "connect4"],
  ["moat_connect6", "connect6"],
  ["moat_sendmsg4", "sendmsg4"],
  ["moat_sendmsg6", "sendmsg6"],
  ["moat_getpeername4", "getpeername4"],
  ["moat_getpeername6", "getpeername6"],
  ["moat_recvmsg4", "recvmsg4"],
  ["moat_recvmsg6", "recvmsg6"],
  ["moat_sockops", "sock_ops"],
  // raw sockets: their owner, for the packet hooks (they never reach connect/sendmsg)
  ["moat_sock_create", "sock_create"],
  // who binds a socket (the accept side), and which processes are proxies (redirects)
  ["moat_post_bind4", "post_bind4"],
  ["moat_post_bind6", "post_bind6"],
  ["moat_post_route", "skb_egress"],
  // the accept side: the connections the cgroup's sockets receive
  ["moat_accept", "skb_ingress"],
];

export interface Attachment {
  program: string;
  hook: "xdp" | "tc-egress" | CgroupAttach;
  /** The interface, or for socket hooks the cgroup directory. */
  interface: string;
  ifindex: number;
  /** "native"/"generic" for XDP; "tcx"/"tc" for TC */
  mode: string;
  linkId: number;
  pin: string | null;
}

/** Conntrack idle timeouts in seconds, by state (load-time knobs of moat.bpf.o). */
export interface Timeouts {
  tcpSyn: number;
  tcpEstablished: number;
  tcpFin: number;
  tcpClose: number;
  udp: number;
  icmp: number;
  other: number;
}

const TIMEOUT_GLOBALS: Record<keyof Timeouts, string> = {
  tcpSyn: "ct_tcp_syn_s",
  tcpEstablished: "ct_tcp_established_s",
  tcpFin: "ct_tcp_fin_s",
  tcpClose: "ct_tcp_close_s",
  udp: "ct_udp_s",
  icmp: "ct_icmp_s",
  other: "ct_other_s",
};

export interface DatapathOptions {
  /** Interfaces to attach to; [] loads without attaching (tests drive it with test runs). */
  interfaces: NetInterface[];
  /** Where links are pinned; null disables pinning (tests). */
  pinRoot?: string | null;
  xdpMode?: XdpMode;
  /** Conntrack table size (default 65536 entries). */
  conntrackEntries?: number;
  timeouts?: Partial<Timeouts>;
  /** A compiled policy applied before anything is attached (the daemon always gives one). */
  image?: ClassifierImage;
  /** A cgroup v2 directory whose processes get the socket hooks (attach.cgroup). */
  cgroup?: string;
  /** Load-time u32 knobs (.rodata) by name; the benchmarks' bench_keys and bench_fresh. */
  globals?: Record<string, number>;
}

export type Counters = Record<CounterName, { packets: bigint; bytes: bigint }>;

function openObject(options: DatapathOptions): BpfObject {
  const path = `${objectsDir}${OBJECT_FILE}`;
  if (!existsSync(path)) {
    throw Object.assign(new Error(`${path} is missing; run 'make build' first.`), {
      code: "ENOBPFOBJ",
    });
  }
  const object = native().BpfObject.open(path);
  try {
    if (options.conntrackEntries) object.setMaxEntries("conntrack", options.conntrackEntries);
    const globals: Record<string, number> = { ...options.globals };
    for (const [key, seconds] of Object.entries(options.timeouts ?? {}))
      globals[TIMEOUT_GLOBALS[key as keyof Timeouts]] = seconds;
    for (const [name, n] of Object.entries(globals)) {
      const value = Buffer.alloc(4);
      value.writeUInt32LE(n);
      object.setGlobal(name, value);
    }
    object.load();
    return object;
  } catch (err) {
    object.close();
    throw err;
  }
}

export class Datapath {
  readonly attachments: Attachment[] = [];
  /** Interfaces not attached to, and why (e.g. an L3 device without Ethernet headers). */
  readonly skipped: { interface: string; reason: string }[] = [];
  readonly objects: { file: string; programs: string[] }[] = [];
  /** The loaded object; its programs are test-run by the bpf tests. */
  readonly object: BpfObject;
  readonly xdp: BpfProgram;
  readonly tc: BpfProgram;
  private readonly links: BpfLink[] = [];
  private rings: RingBuffer[] = [];
  private readonly pinRoot: string | null;
  private readonly policy: PolicyMaps;
  private readonly maps: {
    conntrack: BpfMap;
    counters: BpfMap;
    events: BpfMap;
    ownerCookies: BpfMap;
  };
  private stopped = false;

  private constructor(options: DatapathOptions) {
    this.pinRoot = options.pinRoot === undefined ? PIN_ROOT : options.pinRoot;
    this.object = openObject(options);
    this.objects.push({ file: OBJECT_FILE, programs: this.object.programs().map((p) => p.name) });
    this.xdp = this.object.program("moat_xdp_ingress");
    this.tc = this.object.program("moat_tc_egress");
    this.policy = new PolicyMaps(this.object);
    this.maps = {
      conntrack: this.object.map("conntrack"),
      counters: this.object.map("counters"),
      events: this.object.map("events"),
      ownerCookies: this.object.map("owner_cookies"),
    };
    // XDP leaves new ingress connections to the accept hook only when it will be attached
    this.policy.accept = !!options.cgroup;
  }

  /**
   * Loads, applies `image` if given, attaches; on any failure detaches what was attached and
   * rethrows. Until the first apply() the programs pass every packet (counted as noPolicy).
   */
  static start(options: DatapathOptions): Datapath {
    const dp = new Datapath(options);
    try {
      if (options.image) dp.apply(options.image);
      if (dp.pinRoot && (options.interfaces.length > 0 || options.cgroup)) {
        removeTree(dp.pinRoot); // links left by a daemon that died: this one takes over
        ensureDir(dp.pinRoot);
      }
      for (const nic of options.interfaces) {
        const reason = unsupportedLink(nic.name);
        if (reason) dp.skipped.push({ interface: nic.name, reason });
        else dp.attach(nic, options.xdpMode ?? "auto");
      }
      if (options.cgroup) dp.attachCgroup(options.cgroup);
      return dp;
    } catch (err) {
      dp.stop();
      throw err;
    }
  }

  /** Attaches XDP (ingress) and TC (egress) to one more interface. */
  attach(nic: NetInterface, xdpMode: XdpMode = "auto"): void {
    const [xdpLink, mode] = this.attachXdp(nic, xdpMode);
    this.track(xdpLink, { program: this.xdp.name, hook: "xdp", mode, ...this.where(nic) });
    const tcLink = this.tc.attachTc(nic.ifindex, "egress");
    this.track(tcLink, {
      program: this.tc.name,
      hook: "tc-egress",
      mode: tcLink.kind,
      ...this.where(nic),
    });
  }

  /**
   * Attaches the socket hooks to a cgroup v2 directory: its processes' connect() and unconnected
   * sendmsg() are judged (and redirected) before anything is sent; getpeername, recvmsg, sock_ops
   * and post_bind carry redirects out (docs/redirect.md). With them, the post-route check
   * (cgroup_skb egress) judges again a first packet that leaves by another interface than the
   * route mirror predicted (docs/route-aware.md), and the accept hooks (post_bind4/6, cgroup_skb
   * ingress) attribute, and judge by process, the connections its sockets receive
   * (docs/socket-hooks.md, "The accept side").
   */
  attachCgroup(directory: string): void {
    for (const [program, hook] of SOCKET_HOOKS) {
      const link = this.object.program(program).attachCgroup(directory, hook);
      this.track(link, { program, hook, mode: "cgroup", interface: directory, ifindex: 0 });
    }
  }

  private where(nic: NetInterface) {
    return { interface: nic.name, ifindex: nic.ifindex };
  }

  /** "auto" tries native XDP first, then generic (veth without a peer program, old drivers). */
  private attachXdp(nic: NetInterface, mode: XdpMode): [BpfLink, string] {
    if (mode !== "auto") return [this.xdp.attachXdp(nic.ifindex, mode), mode];
    try {
      return [this.xdp.attachXdp(nic.ifindex, "native"), "native"];
    } catch {
      return [this.xdp.attachXdp(nic.ifindex, "generic"), "generic"];
    }
  }

  private track(link: BpfLink, a: Omit<Attachment, "linkId" | "pin">): void {
    this.links.push(link);
    let pin: string | null = null;
    if (this.pinRoot && link.fd >= 0) {
      ensureDir(this.pinRoot);
      const where = a.ifindex ? a.interface : `cgroup${a.interface.replaceAll("/", "_")}`;
      // a cgroup hook by its program: two programs may share an attach point (post_bind4/6)
      pin = `${this.pinRoot}/link_${a.ifindex ? a.hook : a.program}_${where}`;
      link.pin(pin);
    }
    this.attachments.push({ ...a, linkId: link.id(), pin });
  }

  /** Makes `image` the live policy, atomically (every packet sees the old or the new one). */
  apply(image: ClassifierImage): ApplyResult {
    return this.policy.apply(image);
  }

  /** The live policy generation (0 before the first apply). */
  get generation(): number {
    return this.policy.generation;
  }

  /** Name of rule `index` of `generation` (live or previous), or null. */
  ruleName(index: number, generation: number): string | null {
    return this.policy.ruleName(index, generation);
  }

  /** Redirect `index` of `generation` (live or previous), or null. */
  redirectOf(index: number, generation: number): RedirectTarget | null {
    return this.policy.redirectOf(index, generation);
  }

  /** The original destination of a redirected client, as its proxy sees it (docs/redirect.md). */
  originalOf(peer: SocketAddress, protocol: "tcp" | "udp"): OriginalDestination | null {
    return this.policy.redirects.originalOf(peer, protocol);
  }

  /** A process whose connections are never redirected (moat itself, a proxy). */
  exemptFromRedirects(pid: number): void {
    this.policy.redirects.exemptProcess(pid);
  }

  /** Packet counters summed over CPUs. */
  counters(): Counters {
    const out = {} as Counters;
    const map = this.maps.counters;
    const value = map.lookup(Buffer.alloc(4)) ?? Buffer.alloc(map.valueBufferSize);
    const stride = (countersCodec.size + 7) & ~7;
    for (const [name, index] of Object.entries(Counter) as [CounterName | "max", number][]) {
      if (name === "max") continue;
      const sum = { packets: 0n, bytes: 0n };
      for (let cpu = 0; cpu < map.valuesPerKey; cpu++) {
        const c = counterCodec.decode(value, cpu * stride + index * counterCodec.size);
        sum.packets += c.packets;
        sum.bytes += c.bytes;
      }
      out[name] = sum;
    }
    return out;
  }

  /** Per-rule packets, bytes and connections of the live generation. */
  ruleCounters(): { generation: number; rules: RuleCounter[] } {
    return this.policy.ruleCounters();
  }

  /**
   * Owners of sockets bound before the accept hooks were attached, by socket cookie (what
   * post_bind records for later ones); returns how many were written.
   */
  seedOwners(owners: SocketOwner[]): number {
    const key = Buffer.alloc(8);
    let n = 0;
    for (const o of owners) {
      key.writeBigUInt64LE(o.cookie);
      const comm = Buffer.alloc(16);
      comm.write(o.comm, 0, 15, "utf8"); // NUL-terminated, as the kernel's comm
      const value = ownerCodec.encode({
        cgroup_id: o.cgroupId,
        exe_ino: o.exeIno,
        exe_dev: o.exeDev,
        pid: o.pid,
        uid: o.uid,
        comm,
      });
      this.maps.ownerCookies.update(key, value);
      n++;
    }
    return n;
  }

  /** The connection table, entry by entry. */
  conntrack(): Generator<ConntrackEntry> {
    return conntrackEntries(this.maps.conntrack);
  }

  /** The conntrack map itself (re-judging, occupancy, tests). */
  get conntrackMap(): BpfMap {
    return this.maps.conntrack;
  }

  /** Forgets every tracked connection (their next packets are judged as new). */
  clearConntrack(): number {
    return clearConntrack(this.maps.conntrack);
  }

  /** Delivers every event record (a copy) to `onRecord`. */
  subscribe(onRecord: (record: Buffer) => void): RingBuffer {
    const ring = new (native().RingBuffer)(this.maps.events, (batch) => {
      for (const record of records(batch)) onRecord(record);
    });
    this.rings.push(ring);
    return ring;
  }

  /** Detaches every link, removes pins, unloads the object. Safe to call twice. */
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
    if (this.pinRoot && this.attachments.length > 0) removeTree(this.pinRoot);
    if (this.stopped) return;
    this.stopped = true;
    this.policy.close();
    for (const m of Object.values(this.maps)) m.close();
    this.xdp.close();
    this.tc.close();
    this.object.close();
  }
}
