// Loads moat.bpf.o, attaches its XDP or TC (ingress) and TC (egress) programs to the chosen
// interfaces, pins the links so the policy outlives a crashed daemon, writes compiled policies
// atomically, reads counters, events and the connection table, and detaches on stop().
import type { LimitSweep } from "./limit-maps.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  counter as counterCodec,
  counters as countersCodec,
  Counter,
  owner as ownerCodec,
  type CounterName,
} from "./abi.ts";
import { ensureDir, linkPinName, PIN_ROOT, removeTree } from "./bpffs.ts";
import { PinnedMaps, type Adoption } from "./pinned-maps.ts";
import {
  attachPinned,
  attachPinnedBeside,
  detachStaleLinks,
  type PinnedAttach,
} from "./pinned-links.ts";
import { native } from "./addon.ts";
import {
  clearConntrack,
  conntrackCountPages,
  conntrackEntries,
  conntrackViews,
  type ConntrackCounts,
  type ConntrackEntry,
  type ConntrackView,
} from "./conntrack.ts";
import { conntrackCapacity, conntrackMaxEntries } from "./conntrack-size.ts";
import type { GenerationRecord } from "./generations.ts";
import { PolicyMaps, type ApplyResult, type RuleCounter } from "./policy-maps.ts";
import { nextTurn } from "./in-turns.ts";
import type { BpfLink, BpfMap, BpfObject, BpfProgram, CgroupAttach, XdpMode } from "./native.d.ts";
import type { NetInterface } from "./interfaces.ts";
import type { IngressHook } from "./ingress-choice.ts";
import type { SocketOwner } from "../attribution/listeners.ts";
import { unsupportedLink } from "./link-type.ts";
import type { PolicyImage } from "../policy/compile/kernel-image.ts";
import type { TableImage } from "../policy/compile/image.ts";
import type { RedirectTarget } from "../policy/compile/redirect.ts";
import type { OriginalDestination, SocketAddress } from "./redirect-maps.ts";
import type { NameBinding, NameIdentity } from "./name-maps.ts";
import { NameJournal, type JournaledName, type JournalKey } from "./name-journal.ts";
import type { NameClasses } from "../policy/compile/names.ts";
import { forEachRecord, records } from "./ringbuf-batch.ts";
import { cutIdsConnection, type IdsCut } from "./ids-cut.ts";
import { markIdsCuts } from "./ids-cut-adoption.ts";
import type { IdsCopy } from "./ids-record.ts";
import { LookingRing } from "./looking-ring.ts";
import { FloodMaps, type FloodCounters, type PortAttack } from "./flood-maps.ts";
import { MapCounts } from "./map-counts.ts";
import { cookieKfunc } from "./cookie-probe.ts";
// registers the kernel's reader of open files, by which executables are identified
import "./open-files.ts";
import { Splicer, type SpliceMode, type SpliceOptions, type SpliceStats } from "./splice.ts";
import type { Socket } from "node:net";
import { relayRuleIndex, relaySocketRecord, type RelayedConnection } from "./relay-socket.ts";
import { kernelMonotonicNs } from "./kernel-clock.ts";

const objectsDir = fileURLToPath(new URL("../../build/bpf/", import.meta.url));
export const OBJECT_FILE = "moat.bpf.o";
/** The rate limits' lease cache: the object's size is one cpu's sets (bpf/include/maps.h). */
const LIMIT_CACHE = "limit_lease_cache";
const COOKIE_PROGRAM = "moat_tc_cookie";

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

/** The programs that record each process's executable (bpf/progs/exe.bpf.c), by tracepoint. */
const EXEC_HOOKS: [string, ExecHook][] = [
  ["moat_exec", "sched_process_exec"],
  ["moat_fork", "sched_process_fork"],
];
type ExecHook = "sched_process_exec" | "sched_process_fork";

export interface Attachment {
  program: string;
  hook: "xdp" | "tc-ingress" | "tc-egress" | "tc-cookie" | CgroupAttach | ExecHook;
  /** The interface, or for socket hooks the cgroup directory. */
  interface: string;
  ifindex: number;
  /** "native"/"generic" for XDP; "tcx"/"tc" for TC */
  mode: string;
  linkId: number;
  pin: string | null;
  /** A link a previous daemon pinned, given this daemon's program in place. */
  updated: boolean;
  /** For an ingress hook: why this one judges the interface ("auto: veth -> tc", "ingress: xdp"). */
  why?: string;
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

/** Which program judges an interface's incoming packets (attach.interfaces' `ingress`). */
export type { IngressHook };

export interface DatapathOptions {
  /**
   * Interfaces to attach to, each with the hook of its incoming packets (XDP if not said); []
   * loads without attaching (tests drive it with test runs).
   */
  interfaces: (NetInterface & { ingress?: IngressHook; why?: string })[];
  /** Where links are pinned; null disables pinning (tests). */
  pinRoot?: string | null;
  xdpMode?: XdpMode;
  /**
   * Connections the conntrack table is sized for, and the fragment records' size (default
   * 65536); the kernel's conntrack table holds one entry more (conntrack-size.ts).
   */
  conntrackEntries?: number;
  /** Rate limit state table size: sources tracked at once (default 65536 entries). */
  limitEntries?: number;
  /** Packets a CPU takes from a rate limit's shared state at once (default: by the CPUs). */
  limitLease?: number;
  timeouts?: Partial<Timeouts>;
  /** A compiled policy applied before anything is attached (the daemon always gives one). */
  image?: PolicyImage;
  /** A cgroup v2 directory whose processes get the socket hooks (attach.cgroup). */
  cgroup?: string;
  /**
   * false: the socket hooks' and the executable records' programs are not loaded (half the
   * verifier's work of a load), and attachCgroup refuses; for test runs of the packet programs.
   */
  socketHooks?: boolean;
  /** Load-time u32 knobs (.rodata) by name; the benchmarks' bench_keys and bench_fresh. */
  globals?: Record<string, number>;
  /**
   * The programs Datapath.preload() loaded while something else ran (the daemon reads its
   * policy meanwhile): used when they were loaded as this start would load them, else closed.
   */
  preloaded?: Preloaded;
  /**
   * The DNS proxy's store, for the first apply: given the names a previous daemon journaled
   * (still live), then asked for the bindings of `image`'s name classes, so its slot holds them
   * when it goes live.
   */
  names?: {
    restore(names: JournaledName[]): void;
    bindings(classes: NameClasses): NameBinding[];
  };
}

export type Counters = Record<CounterName, { packets: bigint; bytes: bigint }>;

/** The object loaded and verified ahead of Datapath.start (Datapath.preload). */
export interface Preloaded {
  readonly pinRoot: string | null;
  /** The pins a previous daemon left, adopted by the object (null: there were none). */
  readonly pinned: PinnedMaps | null;
  readonly object: BpfObject;
  readonly adoption: Adoption | null;
}

/** Closes what a preload opened, when no start took it. */
export function closePreloaded(preloaded: Preloaded): void {
  preloaded.object.close();
  preloaded.pinned?.close();
}

function openObject(
  options: DatapathOptions,
  pinned: PinnedMaps | null,
): { object: BpfObject; adoption: Adoption | null } {
  const path = `${objectsDir}${OBJECT_FILE}`;
  if (!existsSync(path)) {
    throw Object.assign(new Error(`${path} is missing; run 'make build' first.`), {
      code: "ENOBPFOBJ",
    });
  }
  const object = native().BpfObject.open(path);
  try {
    // the fragment records are sized with the connections: each is of a datagram in flight on a
    // flow that passed
    if (options.conntrackEntries) {
      object.setMaxEntries("conntrack", conntrackMaxEntries(options.conntrackEntries));
      object.setMaxEntries("frags", options.conntrackEntries);
    }
    if (options.limitEntries) {
      object.setMaxEntries("limit_state", options.limitEntries);
      object.setMaxEntries("limit_leases", options.limitEntries);
    }
    // the rate limits' reports collect every possible cpu's count: the verifier walks that loop
    // once a cpu this machine has (ratelimit.h); their lease cache has a part for each of them
    const cpus = native().numPossibleCpus();
    const cache = object.maps().find((m) => m.name === LIMIT_CACHE);
    if (cache) object.setMaxEntries(LIMIT_CACHE, cache.maxEntries * cpus);
    const globals: Record<string, number> = {
      limit_cpus: cpus,
      ...options.globals,
    };
    for (const [key, seconds] of Object.entries(options.timeouts ?? {}))
      globals[TIMEOUT_GLOBALS[key as keyof Timeouts]] = seconds;
    for (const [name, n] of Object.entries(globals)) {
      const value = Buffer.alloc(4);
      value.writeUInt32LE(n);
      object.setGlobal(name, value);
    }
    // without bpf_sk_assign_tcp_reqsk (kernels before 6.9) the cookie check cannot load: the
    // kernel's own syncookies answer floods instead (docs/policy.md, "flood")
    if (!cookieKfunc()) object.setAutoload(COOKIE_PROGRAM, false);
    if (options.socketHooks === false)
      for (const [program] of [...SOCKET_HOOKS, ...EXEC_HOOKS]) object.setAutoload(program, false);
    const adoption = pinned ? pinned.adopt(object) : null;
    object.load();
    return { object, adoption };
  } catch (err) {
    object.close();
    throw err;
  }
}

/**
 * The preloaded object when it is what `options` would load (same pin root, default sizes and
 * timeouts, the pins adopted that this start would adopt), with the pins this start uses; else
 * null, having closed it.
 */
function takePreloaded(
  pre: Preloaded,
  options: DatapathOptions,
  attaching: boolean,
): { pinned: PinnedMaps | null; object: BpfObject; adoption: Adoption | null } | null {
  const pinRoot = options.pinRoot === undefined ? PIN_ROOT : options.pinRoot;
  const defaults =
    !options.conntrackEntries &&
    !options.limitEntries &&
    !options.globals &&
    !options.timeouts &&
    pre.pinRoot === pinRoot;
  // a start that pins nothing adopts nothing
  if (defaults && (!pinRoot || !attaching) && !pre.pinned)
    return { pinned: null, object: pre.object, adoption: null };
  if (defaults && pinRoot && attaching) {
    if (pre.pinned) return pre;
    // nothing was pinned at the preload: still nothing, the start adopts nothing either
    const pinned = new PinnedMaps(pinRoot);
    if (pinned.empty) return { pinned, object: pre.object, adoption: pinned.adopt(pre.object) };
    pinned.close();
  }
  closePreloaded(pre);
  return null;
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
  readonly tcIngress: BpfProgram;
  /** The cookie check beside XDP (null: the kernel lacks bpf_sk_assign_tcp_reqsk). */
  readonly tcCookie: BpfProgram | null;
  /** The SYN flood defence's maps (flood-maps.ts). */
  private readonly flood: FloodMaps;
  /** Whether the live policy has needed the cookie check: attached beside every XDP hook. */
  private cookieChecks = false;
  private readonly links: BpfLink[] = [];
  private rings: LookingRing[] = [];
  /** subscribe()'s listeners: records made in user space (a swept source's report) reach them too. */
  private eventListeners: ((record: Buffer) => void)[] = [];
  private mapCounts = new MapCounts();
  private readonly pinRoot: string | null;
  /** The maps left pinned for the next daemon (null: nothing attached or pinned). */
  private readonly pinned: PinnedMaps | null;
  /** Which pinned map groups this daemon adopted, and which it created empty. */
  readonly adoption: Adoption | null;
  /** What a start could not do the usual way (a hook not updated in place, and why). */
  readonly notes: string[] = [];
  private readonly policy: PolicyMaps;
  private readonly splicer: Splicer;
  private readonly maps: {
    conntrack: BpfMap;
    counters: BpfMap;
    events: BpfMap;
    flowRecords: BpfMap;
    quicInitials: BpfMap;
    idsRecords: BpfMap;
    ownerCookies: BpfMap;
    heartbeat: BpfMap;
    journal: BpfMap;
    socks: BpfMap;
  };
  /** The DNS proxy's names, kept for the next daemon (name_journal). */
  private readonly journal: NameJournal;
  private stopped = false;
  /** Whether the socket hooks' programs were loaded (DatapathOptions.socketHooks). */
  private readonly socketHooks: boolean;

  private constructor(options: DatapathOptions) {
    this.pinRoot = options.pinRoot === undefined ? PIN_ROOT : options.pinRoot;
    // a daemon that attaches adopts what the previous one left pinned (docs/datapath.md)
    const attaching = options.interfaces.length > 0 || !!options.cgroup;
    const taken = options.preloaded ? takePreloaded(options.preloaded, options, attaching) : null;
    let opened;
    if (taken) {
      this.pinned = taken.pinned;
      opened = taken;
    } else {
      this.pinned = this.pinRoot && attaching ? new PinnedMaps(this.pinRoot) : null;
      try {
        opened = openObject(options, this.pinned);
      } catch (err) {
        this.pinned?.close();
        throw err;
      }
    }
    this.object = opened.object;
    this.adoption = opened.adoption;
    // a preloaded object has every program
    this.socketHooks = !!taken || options.socketHooks !== false;
    this.objects.push({ file: OBJECT_FILE, programs: this.object.programs().map((p) => p.name) });
    this.xdp = this.object.program("moat_xdp_ingress");
    this.tc = this.object.program("moat_tc_egress");
    this.tcIngress = this.object.program("moat_tc_ingress");
    this.tcCookie = cookieKfunc() ? this.object.program(COOKIE_PROGRAM) : null;
    this.flood = new FloodMaps(this.object);
    this.policy = new PolicyMaps(this.object, this.pinned?.generation ?? 0);
    this.maps = {
      conntrack: this.object.map("conntrack"),
      counters: this.object.map("counters"),
      events: this.object.map("events"),
      flowRecords: this.object.map("flow_records"),
      quicInitials: this.object.map("quic_initials"),
      idsRecords: this.object.map("ids_records"),
      ownerCookies: this.object.map("owner_cookies"),
      heartbeat: this.object.map("heartbeat"),
      journal: this.object.map("name_journal"),
      socks: this.object.map("socks"),
    };
    this.journal = new NameJournal(this.maps.journal);
    // XDP leaves new ingress connections to the accept hook only when it will be attached
    this.policy.accept = !!options.cgroup;
    this.policy.limitLease = options.limitLease;
    try {
      this.splicer = new Splicer(this.object);
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /**
   * Loads (the verifier's work: most of a start) before the options of the start are known: the
   * object with the default sizes and timeouts, adopting the pins a previous daemon left under
   * `pinRoot`. Creates no pin. Datapath.start({preloaded}) takes it.
   */
  static preload(options: { pinRoot?: string | null }): Preloaded {
    const pinRoot = options.pinRoot === undefined ? PIN_ROOT : options.pinRoot;
    const pinned = pinRoot && existsSync(join(pinRoot, "abi")) ? new PinnedMaps(pinRoot) : null;
    try {
      return { pinRoot, pinned, ...openObject({ interfaces: [], pinRoot }, pinned) };
    } catch (err) {
      pinned?.close();
      throw err;
    }
  }

  /**
   * Loads, applies `image` if given, attaches; on any failure detaches what was attached and
   * rethrows. Until the first apply() the programs pass every packet (counted as noPolicy).
   */
  static start(options: DatapathOptions): Datapath {
    const dp = new Datapath(options);
    try {
      if (dp.pinned && dp.adoption) dp.pinned.pin(dp.object, dp.adoption);
      // a daemon runs again: hooks that fell back to allow without one judge from now on
      dp.heartbeat();
      // an earlier build's ids cuts, marked before this daemon's policy re-judges them
      if (dp.adoption?.adopted.includes("conntrack")) dp.notes.push(...dp.markAdoptedIdsCuts());
      // the names the previous daemon bound, in the first slot before it goes live
      if (options.names) options.names.restore(dp.journal.read(dp.monotonicNs()));
      // the policy goes live in maps the old programs may share, before any link changes
      if (options.image) dp.apply(options.image, options.names?.bindings);
      for (const nic of options.interfaces) {
        const reason = unsupportedLink(nic.name);
        if (reason) dp.skipped.push({ interface: nic.name, reason });
        else dp.attach(nic, options.xdpMode ?? "auto", nic.ingress);
      }
      if (options.cgroup) dp.attachCgroup(options.cgroup);
      // hooks a previous daemon used and this one does not: detached once the new ones run
      if (dp.pinned && dp.pinRoot) {
        const keep = new Set(dp.attachments.flatMap((a) => (a.pin ? [a.pin] : [])));
        for (const pin of detachStaleLinks(dp.pinRoot, keep)) dp.notes.push(`detached ${pin}`);
        // the old programs are gone from every hook: what they wrote since the copy is carried
        dp.notes.push(...dp.pinned.finishMigrations());
      }
      return dp;
    } catch (err) {
      // a start that took over from a previous daemon leaves its pins enforcing, as that
      // daemon's death did: a failed restart never opens the host
      dp.stop({ keepPins: !!(dp.adoption?.adopted.length || dp.adoption?.migrated.length) });
      throw err;
    }
  }

  /** The adopted table's ids cuts marked (ids-cut-adoption.ts), as lines for the log. */
  private markAdoptedIdsCuts(): string[] {
    try {
      const { marked } = markIdsCuts(this.object);
      return marked ? [`pinned conntrack maps: ${marked} ids cuts marked to stay blocked`] : [];
    } catch (err) {
      // the start goes on: these cuts alone may be let through by the next re-judging
      return [`pinned conntrack maps: ids cuts not marked (${(err as Error).message})`];
    }
  }

  /** Attaches XDP or TC (ingress) and TC (egress) to one more interface. */
  attach(
    nic: NetInterface & { why?: string },
    xdpMode: XdpMode = "auto",
    ingress: IngressHook = "xdp",
  ): void {
    if (ingress === "tc") this.attachTcIngress(nic);
    else this.attachXdpIngress(nic, xdpMode);
    const tcPin = this.pinPath("tc-egress", nic.name);
    const tc = attachPinned(tcPin, this.tc, () => this.tc.attachTc(nic.ifindex, "egress"), true);
    this.track(tc, tcPin, {
      program: this.tc.name,
      hook: "tc-egress",
      mode: tc.updated ? "tcx" : tc.link.kind,
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
    if (!this.socketHooks) throw new Error("the socket hooks were not loaded (socketHooks: false)");
    this.attachExecRecords();
    const where = `cgroup${directory.replaceAll("/", "_")}`;
    for (const [program, hook] of SOCKET_HOOKS) {
      const prog = this.object.program(program);
      // a cgroup hook by its program: two programs may share an attach point (post_bind4/6)
      const pin = this.pinPath(program, where);
      const attached = attachPinned(pin, prog, () => prog.attachCgroup(directory, hook), true);
      this.track(attached, pin, {
        program,
        hook,
        mode: "cgroup",
        interface: directory,
        ifindex: 0,
      });
    }
  }

  /**
   * Once, host-wide: the tracepoints that record each process's executable at exec and fork,
   * which the socket hooks judge `path` rules by (bpf/include/exe.h).
   */
  private attachExecRecords(): void {
    if (this.attachments.some((a) => a.hook === "sched_process_exec")) return;
    for (const [program, hook] of EXEC_HOOKS) {
      const prog = this.object.program(program);
      const pin = this.pinPath(program, "host");
      this.track(
        attachPinnedBeside(pin, () => prog.attachTracing()),
        pin,
        { program, hook, mode: "tracing", interface: "host", ifindex: 0 },
      );
    }
  }

  /**
   * Detaches and unpins every link on interface `ifindex` (or, with 0, on cgroup directory
   * `where`); returns what was released. A deleted interface's links are already detached by
   * the kernel: this closes them and removes their pins.
   */
  release(where: string, ifindex: number): Attachment[] {
    return this.detach((a) =>
      ifindex ? a.ifindex === ifindex : a.ifindex === 0 && a.interface === where,
    );
  }

  /** Whether the accept hooks are attached (new ingress connections wait for them). */
  set acceptHooks(on: boolean) {
    this.policy.accept = on;
  }

  /**
   * Moves an attached interface's ingress judging to the other hook (tc <-> xdp): the new hook is
   * attached before the old one is released, so for a moment both judge (the same policy, the
   * same verdict) and never neither.
   */
  switchIngress(
    nic: NetInterface & { why?: string },
    xdpMode: XdpMode,
    ingress: IngressHook,
  ): { attached: Attachment[]; released: Attachment[] } {
    const old = ingress === "tc" ? "xdp" : "tc-ingress";
    const before = this.attachments.length;
    if (ingress === "tc") this.attachTcIngress(nic);
    else this.attachXdpIngress(nic, xdpMode);
    const attached = this.attachments.slice(before);
    return { attached, released: this.detach((a) => a.ifindex === nic.ifindex && a.hook === old) };
  }

  /** Destroys (and unpins) the attachments `which` selects; returns them. */
  private detach(which: (a: Attachment) => boolean): Attachment[] {
    const gone: Attachment[] = [];
    for (let i = this.attachments.length - 1; i >= 0; i--) {
      const a = this.attachments[i]!;
      if (!which(a)) continue;
      const [link] = this.links.splice(i, 1);
      if (a.pin) link?.unpin();
      link?.destroy();
      gone.unshift(...this.attachments.splice(i, 1));
    }
    return gone;
  }

  private attachTcIngress(nic: NetInterface & { why?: string }): void {
    const pin = this.pinPath("tc-ingress", nic.name);
    const prog = this.tcIngress;
    const tc = attachPinned(pin, prog, () => prog.attachTc(nic.ifindex, "ingress"), true);
    const mode = tc.updated ? "tcx" : tc.link.kind;
    this.track(tc, pin, {
      program: prog.name,
      hook: "tc-ingress",
      mode,
      ...this.where(nic),
      ...(nic.why ? { why: nic.why } : {}),
    });
  }

  private attachXdpIngress(nic: NetInterface & { why?: string }, xdpMode: XdpMode): void {
    const xdpPin = this.pinPath("xdp", nic.name);
    let mode = xdpMode;
    const xdp = attachPinned(
      xdpPin,
      this.xdp,
      () => {
        const [link, chosen] = this.attachXdp(nic, xdpMode);
        mode = chosen as XdpMode;
        return link;
      },
      false,
    );
    if (xdp.updated) {
      // native and generic XDP exclude each other on an interface: the pinned link keeps its mode
      mode = native().xdpAttachMode(nic.ifindex) as XdpMode;
      if (xdpMode !== "auto" && xdpMode !== mode)
        this.notes.push(
          `xdp on ${nic.name} stays ${mode} (pinned link updated in place); ${xdpMode} takes effect after moat stops cleanly`,
        );
    }
    this.track(xdp, xdpPin, {
      program: this.xdp.name,
      hook: "xdp",
      mode,
      ...this.where(nic),
      ...(nic.why ? { why: nic.why } : {}),
    });
    if (this.cookieChecks) this.attachTcCookie(nic);
  }

  /** The cookie check at TC ingress beside XDP: the ACKs to XDP's SYN cookies (syncookie.h). */
  private attachTcCookie(nic: Pick<NetInterface, "name" | "ifindex">): void {
    const prog = this.tcCookie;
    if (!prog || this.attachments.some((a) => a.ifindex === nic.ifindex && a.hook === "tc-cookie"))
      return;
    const pin = this.pinPath("tc-cookie", nic.name);
    const tc = attachPinned(pin, prog, () => prog.attachTc(nic.ifindex, "ingress"), true);
    const mode = tc.updated ? "tcx" : tc.link.kind;
    this.track(tc, pin, { program: prog.name, hook: "tc-cookie", mode, ...this.where(nic) });
  }

  /** Who answers SYN floods with cookies: moat (XDP + the cookie check) or the kernel. */
  get synCookies(): "moat" | "kernel" {
    return this.tcCookie ? "moat" : "kernel";
  }

  /** The SYN flood defence's counts, all CPUs added up. */
  floodCounters(): FloodCounters {
    return this.flood.counters();
  }

  /** The defended ports' attack state. */
  floodAttacks(): PortAttack[] {
    return this.flood.attacks();
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

  /** Where the link of `what` (a hook, or a cgroup hook's program) on `where` is pinned. */
  private pinPath(what: string, where: string): string | null {
    if (!this.pinRoot) return null;
    ensureDir(this.pinRoot);
    return `${this.pinRoot}/${linkPinName(what, where)}`;
  }

  private track(
    attached: PinnedAttach,
    pin: string | null,
    a: Omit<Attachment, "linkId" | "pin" | "updated">,
  ): void {
    const { link } = attached;
    this.links.push(link);
    if (attached.note) this.notes.push(attached.note);
    this.attachments.push({
      ...a,
      linkId: link.id(),
      pin: link.fd >= 0 ? pin : null,
      updated: attached.updated,
    });
  }

  /** What this start adopted from the pinned tree and what it could not do in place, as lines. */
  pinnedReport(): string[] {
    const lines: string[] = [];
    const a = this.adoption;
    if (a && a.adopted.length > 0) lines.push(`adopted pinned maps: ${a.adopted.join(", ")}`);
    const empty = (a?.fresh ?? []).filter((f) => f.reason !== "nothing pinned");
    for (const m of a?.migrated ?? [])
      lines.push(
        `pinned ${m.group} maps migrated from layout ${m.from} to ${m.to}: ${m.copied} entries copied${m.note ? ` (${m.note})` : ""}`,
      );
    for (const f of empty)
      lines.push(`pinned ${f.group} maps not adopted (${f.reason}): created empty`);
    return [...lines, ...this.notes];
  }

  /**
   * Makes `image` the live policy, atomically (every packet sees the old or the new one). When it
   * names hosts, `bindings` gives the name bindings in its classes (the DNS proxy's store): they
   * are in place before the flip. Synchronous: no bindNames() can fall between.
   */
  apply(image: PolicyImage, bindings?: (classes: NameClasses) => NameBinding[]): ApplyResult {
    return this.applied(image, this.policy.apply(image, bindings));
  }

  /**
   * apply() with a turn of the event loop after each table is built (a big policy's tables hold
   * the thread for hundreds of milliseconds); the flip, bindings in place, is still one step.
   * `beforeFlip` runs once the tables are built, just before it, with the old policy still live.
   * One apply at a time: the daemon's reloads are serial.
   */
  async applyInTurns(
    image: PolicyImage,
    bindings?: (classes: NameClasses) => NameBinding[],
    beforeFlip?: () => void,
  ): Promise<ApplyResult> {
    // stop() may come during a turn: what was built is let go and nothing goes live
    const between = async () => {
      await nextTurn();
      this.refuseStopped();
    };
    // tables being made ahead are finished first: this swap takes them if they are its own
    await this.ahead;
    this.refuseStopped();
    return this.applied(
      image,
      await this.policy.applyInTurns(image, bindings, between, beforeFlip),
    );
  }

  /**
   * Starts making the packet tables of a policy still on its way (its image 0's, `tables`), in
   * turns of the event loop: the swap that brings it takes them instead of making them
   * (applyInTurns waits for them). A failure here is the swap's to meet again.
   */
  buildAhead(tables: TableImage): void {
    if (this.stopped) return;
    const between = async () => {
      await nextTurn();
      this.refuseStopped();
    };
    const previous = this.ahead;
    this.ahead = previous
      .then(() => {
        // a stop while the tables before these were made: nothing more is made (the policy
        // maps are closed, and a table made now would be held by no one)
        this.refuseStopped();
        return this.policy.buildAhead(tables, between);
      })
      .catch(() => {});
  }

  /** Tables being made ahead of their swap (buildAhead). */
  private ahead: Promise<void> = Promise.resolve();

  private refuseStopped(): void {
    if (this.stopped) throw new Error("the datapath stopped: the policy was not applied");
  }

  /** What follows a policy going live: the pinned generation, the flood defences. */
  private applied(image: PolicyImage, result: ApplyResult): ApplyResult {
    this.pinned?.setGeneration(result.generation);
    const flood = image.packet.synFlood;
    // no cookie check in this kernel: SYNs go to the kernel (its own syncookies), counted
    this.flood.apply(flood && !this.tcCookie ? { ...flood, prevent: false } : flood);
    this.flood.applyUdp(image.packet.udpAmplification);
    this.flood.applyIcmp(image.packet.icmpFlood);
    if (flood?.prevent && this.tcCookie && !this.cookieChecks) {
      this.cookieChecks = true;
      for (const a of this.attachments.filter((x) => x.hook === "xdp"))
        this.attachTcCookie({ name: a.interface, ifindex: a.ifindex });
    }
    return result;
  }

  /**
   * Binds addresses to name classes for identities, in the live policy (the DNS proxy, before it
   * lets an answer go): how many were written, and how many found the map full (failure.helper
   * decides what the proxy does then; counter namesFull).
   */
  bindNames(bindings: readonly NameBinding[]): { written: number; full: number } {
    return this.policy.bindNames(bindings);
  }

  /**
   * The live policy's name bindings. After a restart that adopted the pinned policy, the previous
   * daemon's (in its policy's classes): the kernel judges with them until the first apply, which
   * keeps only what its `bindings` callback gives.
   */
  liveBindings(): NameBinding[] {
    return this.policy.liveBindings();
  }

  /** Removes name bindings from the live policy (expired ones). */
  unbindNames(keys: readonly { identity: NameIdentity; ip: string }[]): void {
    this.policy.unbindNames(keys);
  }

  /** Journals names made or refreshed (the next daemon binds them again). */
  recordNames(names: readonly JournaledName[]): void {
    this.journal.record(names);
  }

  /** Removes names from the journal (expired). */
  forgetNames(keys: readonly JournalKey[]): void {
    this.journal.forget(keys);
  }

  /** Names the full journal did not take (they would not outlive this daemon). */
  get journalFull(): number {
    return this.journal.full;
  }

  /** Now on the kernel's clock (bpf_ktime_get_ns, kernel-clock.ts): for expiresNs. */
  monotonicNs(): bigint {
    return kernelMonotonicNs();
  }

  /** Tables a policy swap took unchanged from the running or previous policy, since start. */
  get tablesReused(): number {
    return this.policy.tablesReused;
  }

  /** The live policy generation (0 before the first apply). */
  get generation(): number {
    return this.policy.generation;
  }

  /** The rules and redirects of the live generation and the few before it. */
  get contents(): GenerationRecord {
    return this.policy.contents;
  }

  /** Redirect `index` of `generation` (live or recent), or null. */
  redirectOf(index: number, generation: number): RedirectTarget | null {
    return this.policy.contents.redirect(index, generation);
  }

  /**
   * The original destination of a redirected client, as its proxy sees it (docs/redirect.md);
   * `netns`: the cookie of the namespace the proxy's socket is in, when it is not moat's.
   */
  originalOf(peer: SocketAddress, protocol: "tcp" | "udp", netns = 0n): OriginalDestination | null {
    return this.policy.redirects.originalOf(peer, protocol, netns);
  }

  /** The DNS proxy's ports in network namespace `cookie` (null: it has none any more). */
  setNetnsPorts(cookie: bigint, ports: { udp: number; tcp: number } | null): void {
    this.policy.redirects.setNetnsPorts(cookie, ports);
  }

  /**
   * A TCP socket for moat's L7 relay, not connected yet, whose record carries the relay's
   * decision (rule and verdict in the live policy): moat's hooks pass its connection to `c.to`
   * as decided, without reporting it again. Returns the fd, for net.Socket({ fd }).
   */
  relaySocket(c: RelayedConnection): number {
    const generation = this.generation;
    const contents = this.contents.of(generation);
    const rule = contents ? relayRuleIndex(contents, c.rule) : -1;
    if (rule < 0) throw new Error(`rule ${c.rule} is not in the live policy`);
    const family = c.to.ip.includes(":") ? 6 : 4;
    const record = relaySocketRecord(c, rule, generation);
    return native().relaySocket(this.maps.socks, family, record);
  }

  /** A process whose connections are never redirected (moat itself, a proxy). */
  exemptFromRedirects(pid: number): void {
    this.policy.redirects.exemptProcess(pid);
  }

  /**
   * Tells the kernel the daemon is alive (on the kernel's clock, as bpf_ktime_get_ns): under
   * failure.daemon allow, the hooks pass everything once this is older than the grace period.
   */
  heartbeat(): void {
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(this.monotonicNs());
    this.maps.heartbeat.update(Buffer.alloc(4), value);
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
    // counted by user space: the bindings the DNS proxy could not write, the splices
    out.namesFull.packets += BigInt(this.policy.namesFull);
    out.splicedConnections.packets += BigInt(this.splicer.connections);
    return out;
  }

  /**
   * Takes a decided connection's two sockets out of the data path (docs/l7-splice.md): the
   * kernel sends each one's bytes to the other ("sockmap"), else an addon thread with splice(2)
   * ("splice"), else Node pipes them ("copy"). Resolves with how.
   */
  splice(client: Socket, upstream: Socket, options?: SpliceOptions): Promise<SpliceMode> {
    return this.splicer.splice(client, upstream, options);
  }

  /** Spliced connections and bytes by mode (the kernel's bytes: counters().spliced). */
  spliceStats(): SpliceStats {
    return this.splicer.stats();
  }

  /**
   * Removes the rate limit state of idle sources and of limits no policy slot has (the daemon
   * calls it every few seconds); what it found and removed. `now` is the time idleness is
   * measured to (the kernel's clock unless a caller that set the limits' clock says otherwise).
   */
  sweepLimits(now = this.monotonicNs()): LimitSweep {
    // a swept source's last packets over its limit reach the subscribers as the kernel's reports do
    const report = (record: Buffer) => {
      for (const onRecord of this.eventListeners) onRecord(record);
    };
    this.flood.sweepUdp(now, report);
    return this.policy.sweepLimits(now, report);
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
        exe_gen: o.exeGen,
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

  /** The connection table as one view re-pointed at each entry: fields read in place. */
  conntrackViews(): Generator<ConntrackView> {
    return conntrackViews(this.maps.conntrack);
  }

  /** The table's entries' counters, a page at a time (the flow records' scan). */
  conntrackCounts(): Generator<ConntrackCounts[]> {
    return conntrackCountPages(this.maps.conntrack);
  }

  /** Connections tracked now: the kernel's count of the table (a walk where it keeps none). */
  conntrackEntries(): number {
    return this.mapCounts.count(this.maps.conntrack);
  }

  /** The conntrack map itself (re-judging, occupancy, tests). */
  get conntrackMap(): BpfMap {
    return this.maps.conntrack;
  }

  /** Connections the table is sized for (its max_entries less the one more it holds). */
  get conntrackCapacity(): number {
    return conntrackCapacity(this.maps.conntrack.maxEntries);
  }

  /** Forgets every tracked connection (their next packets are judged as new). */
  clearConntrack(): number {
    return clearConntrack(this.maps.conntrack);
  }

  /** Delivers every event record (a copy) to `onRecord`, within about two milliseconds of its
   * sending (looking-ring.ts), as each ring below. */
  subscribe(onRecord: (record: Buffer) => void): LookingRing {
    this.eventListeners.push(onRecord);
    const ring = new LookingRing(this.maps.events, (batch) => forEachRecord(batch, onRecord));
    this.rings.push(ring);
    return ring;
  }

  /**
   * Delivers every flow-only record (a struct moat_event of type flow: the close of a connection
   * whose opening was not reported; a copy) to `onRecord`.
   */
  subscribeFlows(onRecord: (record: Buffer) => void): LookingRing {
    const ring = new LookingRing(this.maps.flowRecords, (batch) => forEachRecord(batch, onRecord));
    this.rings.push(ring);
    return ring;
  }

  /** Delivers every copied QUIC datagram record (struct moat_quic_initial, a copy) to `onRecord`. */
  subscribeQuic(onRecord: (record: Buffer) => void): LookingRing {
    const ring = new LookingRing(this.maps.quicInitials, (batch) => {
      for (const record of records(batch)) onRecord(record);
    });
    this.rings.push(ring);
    return ring;
  }

  /**
   * Delivers every copy of a flow's first bytes for the ids signatures (struct moat_ids_record,
   * header and data; a copy) to `onRecord`.
   */
  subscribeIds(onRecord: (record: Buffer) => void): LookingRing {
    const ring = new LookingRing(this.maps.idsRecords, (batch) => {
      for (const record of records(batch)) onRecord(record);
    });
    this.rings.push(ring);
    return ring;
  }

  /** ids.mode prevent: blocks a matched connection's entry and destroys its local socket. */
  cutIds(copy: IdsCopy): IdsCut {
    return cutIdsConnection(this.maps.conntrack, copy, native());
  }

  /**
   * Pins again whatever of this daemon's pins is gone (the pin directory removed by hand while it
   * ran), so its programs outlive it as a hand-over or a crash expects; returns what was pinned.
   */
  restorePins(): string[] {
    if (!this.pinRoot || !this.pinned || this.stopped) return [];
    const restored = this.pinned.restore(this.object);
    this.links.forEach((link, i) => {
      const pin = this.attachments[i]?.pin;
      if (!pin || existsSync(pin)) return;
      link.pin(pin);
      restored.push(pin);
    });
    return restored;
  }

  /**
   * Detaches every link, removes pins, unloads the object. Safe to call twice. With
   * `keepPins`, only this process's handles close: pinned links stay attached and pinned maps
   * stay, for the next daemon.
   */
  stop(options: { keepPins?: boolean } = {}): void {
    for (const ring of this.rings) ring.close();
    this.rings = [];
    this.mapCounts.close();
    for (const link of this.links.splice(0)) {
      if (!options.keepPins) {
        try {
          link.unpin();
        } catch {
          // not pinned
        }
      }
      link.destroy();
    }
    if (this.pinRoot && this.pinned && !options.keepPins) {
      try {
        removeTree(this.pinRoot);
      } catch (err) {
        // refused (no longer root's own directory, or a symlink): the stop goes on
        process.stderr.write(`warning: pins left in place: ${(err as Error).message}\n`);
      }
    }
    if (this.stopped) return;
    this.stopped = true;
    this.pinned?.close();
    this.policy.close();
    this.splicer?.close();
    for (const m of Object.values(this.maps)) m.close();
    this.xdp.close();
    this.tc.close();
    this.tcIngress.close();
    this.tcCookie?.close();
    this.flood.close();
    this.object.close();
  }
}
