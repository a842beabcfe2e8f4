// The daemon's side of DNS names (docs/dns.md): moat's DNS proxy opened at start, before the
// first policy is compiled (the compiler sends DNS queries to its port); the proxy's view of the
// running policy (judge, failure.helper, dns section, trusted resolvers, /etc/hosts) refreshed at
// every apply; the kernel's bindings of a new image filled from the proxy's store before the flip;
// and the names of a kernel event's remote address.
import type { KernelOwner } from "../attribution/index.ts";
import type { PolicyModel } from "../config/index.ts";
import {
  decodeOwner,
  kernelMonotonicNs,
  netnsSocket,
  type ConntrackView,
  type Datapath,
  type MoatEvent,
} from "../datapath/index.ts";
import {
  DnsProxy,
  identityKey,
  identityOf,
  unmapped,
  policyJudge,
  readHosts,
  trustedResolvers,
  ZERO_IDENTITY,
  type ClassesOf,
  type JournaledName,
  type NameBinder,
  type NameBinding,
  type NameKey,
  type OriginalLookup,
} from "../dns/index.ts";
import { firstNameUse, nameServiceWarnings } from "../host/index.ts";
import type { PolicyCompileOptions, PolicyImage } from "../policy/index.ts";
import type { ProcessFacts } from "../attribution/index.ts";

/**
 * The compile options of every policy the daemon compiles: `dnsProxy`, the proxy's UDP and TCP
 * addresses (127.0.0.1 and the proxy's port). The compiler puts the `dns-proxy` redirects first
 * in the redirect image when the policy uses names.
 */
export function dnsCompileOptions(proxy: DnsProxy): PolicyCompileOptions {
  return { dnsProxy: proxy.addresses() };
}

/**
 * The live slot's bindings map through the datapath (bindNames, unbindNames, monotonicNs, all
 * synchronous). Before the datapath is up the proxy binds nothing; it still judges and answers.
 */
export function datapathBinder(
  datapath: () => Datapath | null,
  log: (line: string) => void = () => {},
): NameBinder {
  let journalFull = false;
  return {
    bindNames: (bindings) => datapath()?.bindNames(bindings) ?? { written: 0, full: 0 },
    unbindNames: (keys) => datapath()?.unbindNames(keys),
    monotonicNs: () => datapath()?.monotonicNs() ?? kernelMonotonicNs(),
    recordNames: (names) => {
      const d = datapath();
      d?.recordNames(names);
      // said once: those names live, but a daemon started after this one will not know them
      if (d && d.journalFull > 0 && !journalFull) {
        journalFull = true;
        log("dns proxy: the names journal is full: new names will not outlive a restart");
      }
    },
    forgetNames: (keys) => datapath()?.forgetNames(keys),
  };
}

/** A UDP flow seen within this long is live (an entry lingers in the table after its flow ends). */
const FLOW_LIVE_NS = 30_000_000_000n;
const OPEN_TCP = new Set(["synSent", "synRecv", "established"]);

/** Whether a tracked connection is still open: TCP not closing, other flows recently active. */
function liveEntry(
  c: Pick<ConntrackView, "protocol" | "tcpState" | "lastNs">,
  now: bigint,
): boolean {
  return c.protocol === 6 ? OPEN_TCP.has(c.tcpState) : now - c.lastNs < FLOW_LIVE_NS;
}

/**
 * Whether an identity still has a tracked connection to an address (the binding it used then
 * outlives its TTL, so re-judging after a reload keeps the connection). One pass over the
 * connection table serves a whole sweep; it reads each entry's fields in place, since a sweep
 * asks about once a second and a full table is 65,536 entries.
 */
function liveConnections(datapath: () => Datapath | null): (key: NameKey) => boolean {
  let cached: { at: number; keys: Set<string> } | null = null;
  const read = (): Set<string> => {
    const keys = new Set<string>();
    const d = datapath();
    if (!d) return keys;
    const now = d.monotonicNs();
    for (const c of d.conntrackViews()) {
      if (c.direction !== "egress" || c.verdict === "blocked" || !liveEntry(c, now)) continue;
      const owner = decodeOwner(c.owner);
      if (owner?.exeIno === undefined || owner.exeDev === undefined) continue;
      const identity = {
        cgroupId: owner.cgroupId,
        exeIno: owner.exeIno,
        exeDev: owner.exeDev,
        uid: owner.uid,
      };
      keys.add(`${identityKey(identity)}|${unmapped(c.remoteIp)}`);
    }
    return keys;
  };
  return (key) => {
    const now = Date.now();
    if (!cached || now - cached.at > 1000) cached = { at: now, keys: read() };
    return cached.keys.has(`${identityKey(key.identity)}|${unmapped(key.ip)}`);
  };
}

/** How long `moat status` reuses the name services' warnings (they read /proc). */
const WARNINGS_MS = 5000;

/**
 * The warnings `moat status` shows for the running policy: name services whose lookups lose the
 * asking process (as `moat check` says them), when the policy uses names; none otherwise.
 */
export function nameServiceStatus(policy: () => PolicyModel): () => string[] {
  let cached = { at: -Infinity, lines: [] as string[] };
  return () => {
    if (!firstNameUse(policy())) return [];
    const now = performance.now();
    if (now - cached.at >= WARNINGS_MS) cached = { at: now, lines: nameServiceWarnings() };
    return cached.lines;
  };
}

/** The name classes of a compiled image, for the proxy's bindings (none: the policy names no hosts). */
export function classesOfImage(image: PolicyImage): ClassesOf | null {
  const classes = image.names?.classes;
  return classes ? (list) => classes.classOf(list) : null;
}

export interface DnsNamesOptions {
  original: OriginalLookup;
  datapath: () => Datapath | null;
  /** The running policy; null before the first is read. */
  policy: () => PolicyModel | null;
  generation: () => number;
  process: (owner: KernelOwner) => ProcessFacts;
  report: (event: MoatEvent) => void;
  log: (line: string) => void;
}

export interface DnsNames {
  /** null: the proxy could not listen (no loopback): DNS queries are not proxied. */
  proxy: DnsProxy | null;
  /** The compile options of every policy: `dnsProxy` when the proxy listens. */
  compileOptions: PolicyCompileOptions;
  /** apply()'s second argument: every binding with the new image's classes, for its slot. */
  bindingsFor: (classes: { classOf: ClassesOf }) => NameBinding[];
  /**
   * Datapath.start's `names`: the names the previous daemon journaled (and /etc/hosts) into the
   * store, then the first image's bindings, in its slot before it goes live.
   */
  atStart: {
    restore(names: JournaledName[]): void;
    bindings(classes: { classOf: ClassesOf }): NameBinding[];
  };
  /** After an apply: the proxy follows the live image and policy (and re-reads /etc/hosts). */
  applied(model: PolicyModel, image: PolicyImage): void;
  /** The names a kernel event's owner learned for its remote address. */
  namesOf(owner: KernelOwner, ip: string): string[];
  close(): void;
}

/** Opens moat's DNS proxy; one that cannot listen is logged, and moat runs without it. */
export async function openDnsNames(options: DnsNamesOptions): Promise<DnsNames> {
  const { log } = options;
  const model = () => {
    const m = options.policy();
    if (!m) throw new Error("no policy yet");
    return m;
  };
  let proxy: DnsProxy;
  try {
    proxy = await DnsProxy.open({
      original: options.original,
      binder: datapathBinder(options.datapath, log),
      liveConnection: liveConnections(options.datapath),
      netnsSocket,
      judge: policyJudge(model),
      process: options.process,
      failureHelper: () => options.policy()?.failure.helper ?? "block",
      generation: options.generation,
      report: options.report,
      log,
    });
  } catch (err) {
    log(`warning: moat's DNS proxy cannot listen on 127.0.0.1: ${(err as Error).message}`);
    return {
      proxy: null,
      compileOptions: {},
      bindingsFor: () => [],
      atStart: { restore: () => {}, bindings: () => [] },
      applied: () => {},
      namesOf: () => [],
      close: () => {},
    };
  }
  const { udp } = proxy.addresses();
  log(`dns proxy: listening on ${udp.ip}:${udp.port} (udp and tcp)`);
  let named = false;
  // the classes and hosts file the shared names were last set for: a reload that changes
  // neither (a CrowdSec poll, a set's expiry) does not go over every binding of the store again
  let sharedFor = "";
  return {
    proxy,
    compileOptions: dnsCompileOptions(proxy),
    bindingsFor: (classes) => proxy.store.bindingsFor((names) => classes.classOf(names)),
    atStart: {
      restore(names) {
        proxy.store.restore(names);
        if (names.length > 0) log(`dns proxy: ${names.length} names kept from before the restart`);
        // the hosts file's names are in the first slot too (not only after the first apply)
        proxy.setShared(readHosts());
        sharedFor = "";
      },
      bindings: (classes) => {
        const classesOf: ClassesOf = (names) => classes.classOf(names);
        proxy.setClasses(classesOf);
        return proxy.store.bindingsFor(classesOf);
      },
    },
    applied(next, image) {
      proxy.setClasses(classesOfImage(image));
      const settings = next.dns;
      const trusted = trustedResolvers(settings.resolvers);
      proxy.configure(settings, trusted, next.mode);
      const hosts = readHosts();
      const key = JSON.stringify([image.names?.classes.signature ?? null, [...hosts]]);
      if (key !== sharedFor) proxy.setShared(hosts);
      sharedFor = key;
      // said once, when a policy first uses names
      if (!named && firstNameUse(next)) {
        named = true;
        log(`dns proxy: trusted resolvers: ${trusted.listed.join(", ") || "none"} and loopback`);
        for (const line of nameServiceWarnings()) log(`warning: ${line}`);
      }
    },
    namesOf(owner, ip) {
      if (proxy.store.size === 0) return [];
      return proxy.namesOf(identityOf(owner) ?? ZERO_IDENTITY, ip);
    },
    close: () => proxy.close(),
  };
}
