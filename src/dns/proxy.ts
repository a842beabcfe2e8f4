// moat's DNS proxy (docs/dns.md). The kernel sends the DNS queries of processes under
// attach.cgroup here (UDP and TCP listeners on 127.0.0.1, one ephemeral port, opened once at start
// like the relay). Per query: the kernel's record gives the server the client asked and who
// asked; the policy judges the query (a blocked one is REFUSED at once); moat asks the server
// itself (its own sockets are never redirected); each name the answer's CNAME chain leads to is
// judged as a query for it would be (one blocked refuses the answer); a trusted answer's addresses
// are bound to the asker's identity in the kernel, synchronously, and only then does the client
// get the answer.
import { closeSync } from "node:fs";
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, isIPv6, Socket, type Server } from "node:net";
import type { ProcessFacts } from "../attribution/index.ts";
import type { DnsExchange, MoatEvent, NetnsSocket, NetnsSocketSpec } from "../datapath/index.ts";
import {
  errorAnswer,
  fitUdp,
  MAX_MESSAGE,
  readQuery,
  type AddressRecord,
  readReply,
  truncated,
  type Query,
} from "./answer.ts";
import { BindingStore, type SweepResult } from "./bindings.ts";
import { hasDotInLabel } from "./dns-name.ts";
import { queryEvents, type QueryRecord } from "./dns-event.ts";
import { identityCache } from "./identity.ts";
import { processFactsCache } from "./process-cache.ts";
import type {
  ClassesOf,
  DnsOwner,
  NameBinder,
  NameBinding,
  NameIdentity,
  NameKey,
  OriginalLookup,
} from "./ports.ts";
import { queryFacts, type QueryJudge, type QueryVerdict } from "./query-judge.ts";
import type { DnsSettings } from "../config/index.ts";
import { DOH_RULE } from "../policy/index.ts";

/** A proxy told nothing yet: no resolvers of its own, the policy defaults' floor and grace. */
const DNS_DEFAULTS: DnsSettings = {
  resolvers: [],
  minTtlSeconds: 5,
  graceSeconds: 30,
  doh: "allow",
  ech: "keep",
};
import {
  answerBinds,
  servedNamespace,
  trustedResolvers,
  type ServedNamespace,
  type TrustedResolvers,
} from "./trusted.ts";
import { makeRoom, TCP_LIMITS, TcpClient, type TcpLimits } from "./tcp-client.ts";
import { UpstreamPool, type Answered } from "./upstream-pool.ts";
import { RandomIds, idOf, setId } from "./query-id.ts";

/** How long moat waits for the server's answer before answering SERVFAIL. */
const UPSTREAM_TIMEOUT_MS = 5000;
/** How often expired bindings are unbound. */
/** Often enough that a live connection's binding is extended before the shortest one lapses. */
const SWEEP_MS = 1000;
/** Queries waiting for their server at once; past it a query gets SERVFAIL at once. */
const MAX_PENDING = 4096;
/**
 * The most of them one uid holds (unknown askers together count as one uid): a quarter. The
 * uids other than root together hold at most MAX_PENDING less root's share, so one user's queries
 * stuck on a server that never answers cannot take root's lookups with them.
 */
const PENDING_SHARE = MAX_PENDING / 4;

export interface DnsProxyOptions {
  /** Where a redirected client meant to send its query, and who it is (datapath.originalOf). */
  original: OriginalLookup;
  /** The kernel's bindings of the live slot. */
  binder: NameBinder;
  /** The running policy's judgement of a query. */
  judge: QueryJudge;
  /** The owner's full process facts (src/attribution). */
  process: (owner: DnsOwner) => ProcessFacts;
  /** failure.helper of the running policy: what a full bindings map does to an answer. */
  failureHelper: () => "block" | "allow";
  /** The running policy's generation (events carry it). */
  generation: () => number;
  report: (event: MoatEvent) => void;
  log: (line: string) => void;
  settings?: DnsSettings;
  trusted?: TrustedResolvers;
  /** The identity of an owner (default: the kernel's exe inode/device, else /proc). */
  identity?: (owner: DnsOwner) => NameIdentity | null;
  /** Whether an identity has a live tracked connection to an address (keeps its binding). */
  liveConnection?: (key: NameKey) => boolean;
  /** Makes a socket in another network namespace (the datapath's netnsSocket). */
  netnsSocket?: (nsPath: string, spec: NetnsSocketSpec) => NetnsSocket;
  timeoutMs?: number;
  sweepMs?: number;
  /** Bounds on TCP clients (default TCP_LIMITS). */
  tcp?: Partial<TcpLimits>;
  /** The names the binding store holds at most (default MAX_NAMES), a quarter per uid. */
  maxNames?: number;
}

export interface DnsProxyStats {
  queries: number;
  refused: number;
  /**
   * Answers whose bindings the full kernel map did not take, or that would have taken the
   * asking uid past its share of the store's names (failure.helper decided).
   */
  bindFull: number;
  /** Servers that did not answer in time, or answered garbage. */
  failed: number;
  /** Queries over the pending limit or their uid's share of it, answered SERVFAIL at once. */
  overloaded: number;
}

export interface ListenAddress {
  ip: string;
  port: number;
}

const NO_CLASSES: ClassesOf = () => 0;

/**
 * Where queries come in: moat's own loopback (`netns` null), or the loopback of another network
 * namespace (a container's), where the proxy's sockets were made and from where it asks the
 * servers the container asked (they may be reachable only from there); `namespace` says whether
 * answers asked there may bind names (trusted.ts).
 */
interface Listener {
  udp: UdpSocket;
  tcp: Server;
  netns: { path: string; cookie: bigint; namespace: ServedNamespace } | null;
}

/** The proxy's ports in another network namespace, by its cookie (the kernel's key). */
export interface NetnsListen {
  cookie: bigint;
  udp: number;
  tcp: number;
  /** Who owns the namespace ("user-owned": its answers bind no names). */
  namespace: ServedNamespace;
}

/** Firefox's canary domain: NXDOMAIN tells it the network turns DNS over HTTPS off. */
const DOH_CANARY = "use-application-dns.net";

/** The canary's verdict in detect mode: what `dns:doh` would have prevented. */
function canaryDetected(): QueryVerdict {
  return { verdict: "detected", rule: DOH_RULE, mode: "detect" };
}

export class DnsProxy {
  readonly store: BindingStore;
  readonly stats: DnsProxyStats = { queries: 0, refused: 0, bindFull: 0, failed: 0, overloaded: 0 };
  private readonly options: DnsProxyOptions;
  private settings: DnsSettings;
  /** The policy's mode: the canary's, as dns:doh's (docs/dns.md, "Encrypted DNS"). */
  private policyMode: "detect" | "prevent" = "prevent";
  private trusted: TrustedResolvers;
  private classesOf: ClassesOf = NO_CLASSES;
  private home: Listener | null = null;
  /** Listeners in other network namespaces, by the caller's name for the namespace. */
  private readonly namespaces = new Map<string, Listener>();
  /** TCP clients, oldest first. */
  private readonly clients = new Map<Socket, TcpClient>();
  private readonly tcpLimits: TcpLimits;
  private readonly upstreams = new Set<{ close(): void }>();
  /** moat's own UDP sockets to the servers, reused (queries of moat's namespace). */
  private readonly pool = new UpstreamPool();
  /** The ids of the queries asked from other namespaces' sockets. */
  private readonly queryIds = new RandomIds();
  private readonly pending = new PendingShares();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly sweepMs: number;
  /** options.process, each client's facts kept for a second (not read from /proc per query). */
  private readonly processOf: (owner: DnsOwner) => ProcessFacts;
  /** Each client's identity (the same object for a while: the binding store keys it once). */
  private readonly identityOfOwner: (owner: DnsOwner) => NameIdentity | null;

  private constructor(options: DnsProxyOptions) {
    this.options = options;
    this.processOf = processFactsCache(options.process);
    this.identityOfOwner = options.identity ?? identityCache();
    this.sweepMs = options.sweepMs ?? SWEEP_MS;
    this.tcpLimits = { ...TCP_LIMITS, ...options.tcp };
    this.settings = options.settings ?? DNS_DEFAULTS;
    this.trusted = options.trusted ?? trustedResolvers(this.settings.resolvers);
    const binder = options.binder;
    this.store = new BindingStore({
      now: () => binder.monotonicNs(),
      minTtlSeconds: () => this.settings.minTtlSeconds,
      graceSeconds: () => this.settings.graceSeconds,
      ...(options.liveConnection ? { liveConnection: options.liveConnection } : {}),
      journal: {
        record: (names) => binder.recordNames?.(names),
        forget: (keys) => binder.forgetNames?.(keys),
      },
      ...(options.maxNames !== undefined ? { maxNames: options.maxNames } : {}),
    });
  }

  /** Opens both listeners (throws when either cannot listen). */
  static async open(options: DnsProxyOptions): Promise<DnsProxy> {
    const proxy = new DnsProxy(options);
    try {
      proxy.home = await proxy.listen();
    } catch (err) {
      proxy.close();
      throw err;
    }
    proxy.sweepTimer = setInterval(() => proxy.sweep(), proxy.sweepMs);
    proxy.sweepTimer.unref();
    return proxy;
  }

  /** Where the kernel sends DNS queries: the implicit redirect's targets. */
  addresses(): { udp: ListenAddress; tcp: ListenAddress } {
    const u = this.home?.udp.address();
    const t = this.home?.tcp.address();
    if (!u || !t || typeof t === "string") throw new Error("the DNS proxy is not listening");
    return { udp: { ip: u.address, port: u.port }, tcp: { ip: t.address, port: t.port } };
  }

  /** The live image's name classes (after every apply; null: the image has none). */
  setClasses(classesOf: ClassesOf | null): void {
    this.classesOf = classesOf ?? NO_CLASSES;
  }

  /** The running policy's dns section, trusted resolvers and mode (at start and on reload). */
  configure(
    settings: DnsSettings,
    trusted: TrustedResolvers,
    mode: "detect" | "prevent" = "prevent",
  ): void {
    this.settings = settings;
    this.trusted = trusted;
    this.policyMode = mode;
  }

  /** The names an identity learned for an address (and those every identity shares). */
  namesOf(identity: NameIdentity, ip: string): string[] {
    return this.store.namesOf(identity, ip);
  }

  /** Replaces the bindings every identity shares (/etc/hosts) in the store and the live slot. */
  setShared(hosts: ReadonlyMap<string, readonly string[]>): void {
    this.write(this.store.setShared(hosts, this.classesOf), "/etc/hosts");
  }

  /** Unbinds what expired (every few seconds; tests call it directly). */
  sweep(): void {
    // a live connection's binding is extended before the next sweep would come too late
    const horizon = BigInt(this.sweepMs) * 2_000_000n;
    this.write(this.store.sweep(this.classesOf, horizon), "expiry sweep");
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const l of [this.home, ...this.namespaces.values()]) {
      l?.udp.close();
      l?.tcp.close();
    }
    for (const c of this.clients.keys()) c.destroy();
    for (const u of this.upstreams) u.close();
    this.pool.close();
    this.home = null;
    this.namespaces.clear();
  }

  /**
   * Listens on 127.0.0.1 inside the network namespace of `nsPath` too (a container's, named `id`
   * by the caller); its queries are answered there, asked upstream from there. The kernel sends
   * that namespace's queries to the ports returned (datapath.setNetnsPorts). In one that a user
   * namespace other than moat's owns, no answer binds a name (trusted.ts).
   */
  async serveNetns(id: string, nsPath: string): Promise<NetnsListen> {
    const make = this.options.netnsSocket;
    if (!make) throw new Error("the DNS proxy cannot make sockets in other network namespaces");
    const served = this.namespaces.get(id);
    if (served?.netns) return this.portsOf(served);
    const where = { path: nsPath, namespace: servedNamespace(nsPath) };
    const listener = await this.listen((port) => {
      const u = make(nsPath, { type: "udp", ip: "127.0.0.1", port });
      try {
        const t = make(nsPath, { type: "tcp", ip: "127.0.0.1", port: u.port, listen: true });
        return { udp: { fd: u.fd }, tcp: { fd: t.fd }, port: u.port, cookie: u.cookie };
      } catch (err) {
        closeFd(u.fd);
        throw err;
      }
    }, where);
    this.namespaces.set(id, listener);
    return this.portsOf(listener);
  }

  /** Stops listening in namespace `id` (its processes are gone). */
  unserveNetns(id: string): void {
    const l = this.namespaces.get(id);
    if (!l) return;
    this.namespaces.delete(id);
    l.udp.close();
    l.tcp.close();
  }

  /** The namespaces served (the caller's names). */
  servedNetns(): string[] {
    return [...this.namespaces.keys()];
  }

  private portsOf(l: Listener): NetnsListen {
    return {
      cookie: l.netns?.cookie ?? 0n,
      udp: l.udp.address().port,
      tcp: (l.tcp.address() as { port: number }).port,
      namespace: l.netns?.namespace ?? "user-owned",
    };
  }

  private write(change: SweepResult, what: string): void {
    const { binder, log } = this.options;
    if (change.unbind.length) binder.unbindNames(change.unbind);
    if (change.bind.length) {
      const { full } = binder.bindNames(change.bind);
      if (full > 0) log(`dns: ${what}: the bindings map is full; ${full} bindings not written`);
    }
  }

  /**
   * UDP and TCP on one port number (a client that retries a truncated answer over TCP asks the
   * same port); a TCP port already taken starts over with another. Without `make`: on moat's own
   * 127.0.0.1. With it: on the sockets `make` gives (port 0: any), in namespace `served`.
   */
  private async listen(
    make?: (port: number) => MadeSockets,
    served?: { path: string; namespace: ServedNamespace },
  ): Promise<Listener> {
    for (let attempt = 0; ; attempt++) {
      let made: MadeSockets | null = null;
      try {
        made = make ? make(0) : null;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 20) throw err;
        continue;
      }
      // replies go to the address a datagram came from (always an IP): no resolver turn per reply
      const udp = createSocket({ type: "udp4", lookup: literalAddress });
      const listener: Listener = {
        udp,
        // a client that shuts its sending side still gets its answers (tcp-client.ts)
        tcp: createServer({ allowHalfOpen: true }, (s) => this.onConnection(s, listener)),
        netns: made && served ? { ...served, cookie: made.cookie } : null,
      };
      udp.on("message", (msg, rinfo) => this.onDatagram(msg, rinfo, listener));
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(made ? made.udp : { address: "127.0.0.1", port: 0, exclusive: true }, () => {
          udp.off("error", reject);
          resolve();
        });
      });
      udp.on("error", (err) => this.options.log(`dns proxy (udp): ${err.message}`));
      const tcp = listener.tcp;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once("error", reject);
          const where = made
            ? made.tcp
            : { host: "127.0.0.1", port: udp.address().port, exclusive: true };
          tcp.listen(where, () => {
            tcp.off("error", reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 20) throw err;
        continue;
      }
      return listener;
    }
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo, via: Listener): void {
    this.safely(msg, { ip: rinfo.address, port: rinfo.port }, "udp", via, (reply) => {
      if (!reply || (via !== this.home && !this.namespaces.has(this.idOf(via)))) return;
      try {
        via.udp.send(reply, rinfo.port, rinfo.address);
      } catch (err) {
        // a listener closed meanwhile: the answer is dropped, moat runs on
        this.options.log(`dns proxy (udp): no answer sent: ${(err as Error).message}`);
      }
    });
  }

  private idOf(l: Listener): string {
    for (const [id, v] of this.namespaces) if (v === l) return id;
    return "";
  }

  /** TCP: 2-byte length framing, several queries per connection, within TCP_LIMITS. */
  private onConnection(client: Socket, via: Listener): void {
    const peer = { ip: client.remoteAddress ?? "", port: client.remotePort ?? 0 };
    const uid = this.uidOf(peer, via);
    makeRoom(this.clients, this.tcpLimits, uid);
    const log = this.options.log;
    const served = new TcpClient(
      client,
      this.tcpLimits,
      { uid, log },
      (query) => new Promise((resolve) => this.safely(query, peer, "tcp", via, resolve)),
    );
    this.clients.set(client, served);
    client.on("close", () => this.clients.delete(client));
  }

  /** Who opened a TCP connection, as the kernel recorded it (null: unknown). */
  private uidOf(peer: { ip: string; port: number }, via: Listener): number | null {
    try {
      return this.options.original(peer, "tcp", via.netns?.cookie ?? 0n)?.owner?.uid ?? null;
    } catch {
      return null;
    }
  }

  /**
   * Answers `query` through `reply`, once (null: no answer is sent). Callbacks, not promises, per
   * query: a query the proxy answers itself is answered in this call, one it asks upstream when
   * the server's answer comes. A bug in answering is logged and the client gets SERVFAIL, moat
   * runs on.
   */
  private safely(
    query: Buffer,
    client: { ip: string; port: number },
    protocol: "udp" | "tcp",
    via: Listener,
    reply: (answer: Buffer | null) => void,
  ): void {
    let now: Buffer | null | Asked;
    try {
      now = this.answer(query, client, protocol, via);
    } catch (err) {
      reply(this.failed(query, client, err));
      return;
    }
    if (now === null || Buffer.isBuffer(now)) {
      reply(now);
      return;
    }
    const asked = now;
    // once, whatever the exchange does (its place among the pending queries is given back there)
    let settled = false;
    const done: Answered = (err, upstream) => {
      if (settled) return;
      settled = true;
      let answer: Buffer | null;
      try {
        answer = this.answered(asked, err, upstream);
      } catch (e) {
        answer = this.failed(query, client, e);
      }
      reply(answer);
    };
    try {
      this.ask(asked.record.server, query, protocol, via, done);
    } catch (err) {
      done(err as Error);
    }
  }

  /**
   * A bug in answering `query`: logged; its answer is SERVFAIL (null: none can be written). It
   * never throws, whatever was thrown: it runs in a socket's handler, where a throw ends moat.
   */
  private failed(query: Buffer, client: { ip: string; port: number }, err: unknown): Buffer | null {
    this.stats.failed++;
    const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.options.log(`dns proxy: a query from ${client.ip}:${client.port} failed: ${why}`);
    try {
      return errorAnswer(query, "SERVFAIL");
    } catch {
      return null;
    }
  }

  /**
   * The client's answer to one query when the proxy answers it itself (null when the bytes are
   * not a query: dropped), else what answering it needs once the server answered (`answered`).
   */
  private answer(
    query: Buffer,
    client: { ip: string; port: number },
    protocol: "udp" | "tcp",
    via: Listener,
  ): Buffer | null | Asked {
    const q = readQuery(query);
    if (!q) return null;
    this.stats.queries++;
    // a client's port is its namespace's: looked up in the listener's (moat's own: 0n)
    const found = this.options.original(client, protocol, via.netns?.cookie ?? 0n);
    if (!found) {
      // not a redirected client (someone asked the proxy's port directly): nothing to ask
      this.stats.refused++;
      return errorAnswer(query, "REFUSED");
    }
    const server = found.original;
    const owner = found.owner;
    const process = owner ? this.processOf(owner) : null;
    const identity = owner ? this.identityOfOwner(owner) : null;
    const serverNames = identity ? this.store.namesOf(identity, server.ip) : undefined;
    // a query of other than one question is not asked (FORMERR): judged by its first name, read
    // alone, for its events
    const name = q.name;
    const verdict = this.options.judge(
      queryFacts({ protocol, client, server, name, process, serverNames }),
    );
    // the listener says the namespace: the kernel's record of the client does not
    const trusted = answerBinds(this.trusted, server.ip, via.netns?.namespace ?? "moat");
    const exchange: DnsExchange = { query: name, qtype: q.type, rcode: "", answers: [], trusted };
    // the query's events, once its answer is known (a record, not a closure per query)
    const record: QueryRecord = {
      protocol,
      client,
      server,
      process,
      verdict,
      exchange,
      generation: 0,
    };

    if (q.questions !== 1) {
      this.stats.refused++;
      return this.reported(record, errorAnswer(query, "FORMERR"), "FORMERR");
    }
    // a label with a dot in it, whatever the verdict: its labels joined read as another name
    if (verdict.verdict === "blocked" || hasDotInLabel(name)) {
      this.stats.refused++;
      return this.reported(record, errorAnswer(query, "REFUSED"), "REFUSED");
    }
    // Firefox keeps DNS over HTTPS off when its canary does not resolve
    if (this.settings.doh === "block" && q.name === DOH_CANARY) {
      // dns:doh's mode is the policy's, whatever mode the rule that judged the query has
      if (this.policyMode === "prevent")
        return this.reported(record, errorAnswer(query, "NXDOMAIN"), "NXDOMAIN");
      // detect mode alters no answer: the canary is asked as any name, and reported detected
      record.verdict = canaryDetected();
    }
    const uid = owner ? owner.uid : null;
    if (!this.pending.take(uid)) {
      this.stats.overloaded++;
      return this.reported(record, errorAnswer(query, "SERVFAIL"), "SERVFAIL");
    }
    // counted in pending until `answered` (called once, whatever the server does)
    return { query, q, record, uid, identity, serverNames };
  }

  /** The client's answer once the server answered `asked` (or failed: `err`). */
  private answered(asked: Asked, err: Error | null, upstream: Buffer | undefined): Buffer {
    const { query, q, record, identity } = asked;
    const { protocol, server, exchange } = record;
    this.pending.release(asked.uid);
    if (err || !upstream) {
      this.stats.failed++;
      this.options.log(
        `dns proxy: ${server.ip} did not answer ${q.name}: ${err ? err.message : "no answer"}`,
      );
      return this.reported(record, errorAnswer(query, "SERVFAIL"), "SERVFAIL");
    }
    const read = readReply(upstream, q.name, this.settings.ech === "strip");
    let reply = read.reply;
    const a = read.answer;
    if (!a || a.id !== q.id) {
      this.stats.failed++;
      return this.reported(record, errorAnswer(query, "SERVFAIL"), "SERVFAIL");
    }
    // a chain name with a dot in a label is neither judged nor bound: the answer is refused
    if (a.names.some(hasDotInLabel)) {
      this.stats.refused++;
      return this.reported(record, errorAnswer(query, "REFUSED"), "REFUSED");
    }
    // a name the answer leads to is judged as if asked: an alias does not reveal a blocked name
    const chained = this.chainVerdict(asked, a.names);
    if (chained?.verdict.verdict === "blocked") {
      this.stats.refused++;
      record.verdict = chained.verdict;
      record.name = chained.name;
      return this.reported(record, errorAnswer(query, "REFUSED"), "REFUSED");
    }
    // a name past the names followed is not judged: the client, which follows on, must not get it
    if (a.chainCut) {
      this.stats.failed++;
      this.options.log(
        `dns proxy: the answer from ${server.ip} for ${q.name} has a CNAME chain longer than 16 names`,
      );
      return this.reported(record, errorAnswer(query, "SERVFAIL"), "SERVFAIL");
    }
    if (chained && record.verdict.verdict === "allowed") {
      record.verdict = chained.verdict;
      record.name = chained.name;
    }
    exchange.answers = a.summary;
    // written again without its hints (and uncompressed), it can outgrow TCP's 2-byte length
    if (protocol === "tcp" && reply.length > MAX_MESSAGE) {
      this.stats.failed++;
      this.options.log(
        `dns proxy: the answer from ${server.ip} for ${q.name} is ${reply.length} bytes once its hints are out, more than TCP carries`,
      );
      return this.reported(record, errorAnswer(query, "SERVFAIL"), "SERVFAIL");
    }
    // the server truncated it: the client asks again over TCP, and that answer binds
    if (a.truncated) return this.reported(record, truncated(reply), a.rcode);
    const binds = exchange.trusted && a.rcode === "NOERROR" && a.addresses.length > 0;
    if (binds && identity && !this.bindAnswer(identity, q.name, a, exchange)) {
      this.stats.bindFull++;
      if (this.options.failureHelper() === "block")
        return this.reported(record, errorAnswer(query, "SERVFAIL"), "SERVFAIL");
    }
    if (protocol === "udp") reply = fitUdp(reply, q.udpLimit);
    return this.reported(record, reply, a.rcode);
  }

  /**
   * Binds a trusted answer's addresses to the asker's identity, in the store and (synchronously:
   * before the client has the answer) in the kernel. False when they could not all be: the uid's
   * share of the store's names is used up (nothing bound), or the kernel's map is full (logged;
   * failure.helper decides).
   */
  private bindAnswer(
    identity: NameIdentity,
    name: string,
    a: { names: string[]; addresses: AddressRecord[] },
    exchange: DnsExchange,
  ): boolean {
    const helper = () => this.options.failureHelper();
    // a uid past its share of the store's names binds no more until some of them expire
    if (!this.store.hasRoom(identity, a.names, a.addresses)) {
      this.options.log(
        `dns proxy: the names of uid ${identity.uid} are at their bound: the addresses of ${name} not bound (failure.helper: ${helper()})`,
      );
      return false;
    }
    exchange.names = boundNames(a);
    const bindings = this.store.learn(identity, a.names, a.addresses, this.classesOf);
    const { full } = bindings.length ? this.bind(bindings) : { full: 0 };
    if (full === 0) return true;
    this.store.unwritten(bindings);
    this.options.log(
      `dns proxy: the bindings map is full: ${full} addresses of ${name} not bound (failure.helper: ${helper()})`,
    );
    return false;
  }

  /**
   * The verdict on the names of an answer's CNAME chain past the query's own (judged before it
   * was asked), each judged as if the client had asked it: the first that a `layer7.dns.name`
   * rule blocks, else the first one it detects; null when there is none. Only such a rule's
   * verdict counts: the defaults, or a rule on something else, judged the query itself.
   */
  private chainVerdict(
    asked: Asked,
    names: readonly string[],
  ): { name: string; verdict: QueryVerdict } | null {
    if (names.length < 2) return null;
    const { protocol, client, server, process } = asked.record;
    const serverNames = asked.serverNames;
    let detected: { name: string; verdict: QueryVerdict } | null = null;
    for (let i = 1; i < names.length; i++) {
      const name = names[i] ?? "";
      const verdict = this.options.judge(
        queryFacts({ protocol, client, server, name, process, serverNames }),
      );
      if (!verdict.byName || verdict.verdict === "allowed") continue;
      if (verdict.verdict === "blocked") return { name, verdict };
      detected ??= { name, verdict };
    }
    return detected;
  }

  /** Reports the events of a query answered with `rcode`; returns its answer. */
  private reported(record: QueryRecord, reply: Buffer, rcode: string): Buffer {
    record.exchange.rcode = rcode;
    record.generation = this.options.generation();
    // judged by dns:doh, its events say so as the connections it judges do
    const doh = record.verdict.rule === DOH_RULE;
    for (const ev of queryEvents(record)) this.options.report(doh ? { ...ev, reason: "doh" } : ev);
    return reply;
  }

  /** Writes an answer's bindings; those the kernel did not take are written with the next one. */
  private bind(bindings: NameBinding[]): { full: number } {
    try {
      return this.options.binder.bindNames(bindings);
    } catch (err) {
      this.store.unwritten(bindings);
      throw err;
    }
  }

  /**
   * The server's answer through `done` (called once), asked from moat's own socket (never
   * redirected: moat is exempt).
   */
  private ask(
    server: { ip: string; port: number },
    query: Buffer,
    protocol: "udp" | "tcp",
    via: Listener,
    done: Answered,
  ): void {
    const timeoutMs = this.options.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
    const netns = via.netns?.path ?? null;
    if (protocol === "udp" && !netns) {
      this.pool.exchange(server, query, timeoutMs, done);
      return;
    }
    const asked =
      protocol === "udp"
        ? this.askUdp(server, query, timeoutMs, netns)
        : this.askTcp(server, query, timeoutMs, netns);
    asked.then(
      (answer) => done(null, answer),
      (err: unknown) => done(err as Error),
    );
  }

  /**
   * One exchange with an upstream server: settles once (answer, error, timeout, or moat
   * stopping), then `release` closes its socket. `start` sends and calls `done` when it ends.
   */
  private exchange(
    timeoutMs: number,
    release: () => void,
    start: (done: (err: Error | null, answer?: Buffer) => void) => void,
  ): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const handle = { close: () => done(new Error("moat is stopping")) };
      const timer = setTimeout(() => done(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      let settled = false;
      const done = (err: Error | null, answer?: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.upstreams.delete(handle);
        release();
        if (err) reject(err);
        else resolve(answer ?? Buffer.alloc(0));
      };
      this.upstreams.add(handle);
      start(done);
    });
  }

  private askUdp(
    server: { ip: string; port: number },
    query: Buffer,
    timeoutMs: number,
    netns: string | null,
  ): Promise<Buffer> {
    const v6 = isIPv6(server.ip);
    const socket = createSocket(v6 ? "udp6" : "udp4");
    // from the client's namespace: the server it asked may be reachable only from there
    if (netns && this.options.netnsSocket) {
      const ip = v6 ? "::" : "0.0.0.0";
      socket.bind({ fd: this.options.netnsSocket(netns, { type: "udp", ip, port: 0 }).fd });
    }
    // asked under a random id, as from moat's namespace: the client (a process of that
    // namespace) knows its own id and could answer for the server; its id goes back in the answer
    const asked = Buffer.from(query);
    const id = this.queryIds.next();
    setId(asked, id);
    return this.exchange(
      timeoutMs,
      () => socket.close(),
      (done) => {
        socket.on("error", (err) => done(err));
        // a datagram to another id is not the answer
        socket.on("message", (msg) => {
          if (msg.length < 2 || idOf(msg) !== id) return;
          setId(msg, idOf(query));
          done(null, msg);
        });
        // connected: only the server's datagrams arrive, and its ICMP refusal fails at once
        socket.connect(server.port, server.ip, () => {
          socket.send(asked, (err) => {
            if (err) done(err);
          });
        });
      },
    );
  }

  private netnsTcp(netns: string, server: { ip: string; port: number }): number {
    const make = this.options.netnsSocket;
    if (!make) throw new Error("no sockets in other network namespaces");
    const ip = isIPv6(server.ip) ? "::" : "0.0.0.0";
    return make(netns, { type: "tcp", ip, port: 0, connect: server }).fd;
  }

  private askTcp(
    server: { ip: string; port: number },
    query: Buffer,
    timeoutMs: number,
    netns: string | null,
  ): Promise<Buffer> {
    const framed = Buffer.concat([Buffer.alloc(2), query]);
    framed.writeUInt16BE(query.length);
    // in the client's namespace the addon connects (in progress when it returns); a write waits
    const inNetns = netns && this.options.netnsSocket;
    const socket = inNetns
      ? new Socket({ fd: this.netnsTcp(netns, server), readable: true, writable: true })
      : connect({ host: server.ip, port: server.port });
    return this.exchange(
      timeoutMs,
      () => socket.destroy(),
      (done) => {
        // joined once the whole answer is in: a server sending a byte per segment would
        // otherwise have moat copy all it sent so far once per byte
        const chunks: Buffer[] = [];
        let length = 0;
        let need = 0;
        if (inNetns) socket.write(framed);
        else socket.on("connect", () => socket.write(framed));
        socket.on("data", (chunk) => {
          chunks.push(chunk);
          length += chunk.length;
          if (need === 0 && length >= 2) {
            const head = chunks[0]!.length >= 2 ? chunks[0]! : Buffer.concat(chunks, length);
            need = 2 + head.readUInt16BE(0);
          }
          if (need > 0 && length >= need)
            done(null, Buffer.concat(chunks, length).subarray(2, need));
        });
        socket.on("error", (err) => done(err));
        socket.on("close", () => done(new Error("the server closed the connection")));
      },
    );
  }
}

/** A query asked upstream: what answering it needs once the server answered. */
interface Asked {
  query: Buffer;
  q: Query;
  record: QueryRecord;
  /** Its place in the pending queries (PendingShares). */
  uid: number | null;
  identity: NameIdentity | null;
  /** The names this identity's lookups gave the server's address (the query's judgement's). */
  serverNames: string[] | undefined;
}

/**
 * The queries waiting for their server, by the uid that asked them (null: the kernel did not
 * say): within MAX_PENDING and PENDING_SHARE.
 */
class PendingShares {
  private readonly byUid = new Map<number | null, number>();
  /** Those of every uid but root's. */
  private others = 0;

  /** Counts a query of `uid` in; false when its share, or the room left to non-root, is full. */
  take(uid: number | null): boolean {
    const held = this.byUid.get(uid) ?? 0;
    if (held >= PENDING_SHARE) return false;
    if (uid !== 0 && this.others >= MAX_PENDING - PENDING_SHARE) return false;
    this.byUid.set(uid, held + 1);
    if (uid !== 0) this.others++;
    return true;
  }

  release(uid: number | null): void {
    const held = (this.byUid.get(uid) ?? 1) - 1;
    if (held > 0) this.byUid.set(uid, held);
    else this.byUid.delete(uid);
    if (uid !== 0) this.others--;
  }
}

/** A listener's sockets made elsewhere: what dgram's bind and net's listen take. */
interface MadeSockets {
  udp: { fd: number };
  tcp: { fd: number };
  port: number;
  cookie: bigint;
}

/** dgram's lookup for an address that is already an IPv4 literal: answered at once. */
function literalAddress(
  address: string,
  _family: unknown,
  callback: (err: Error | null, address: string, family: number) => void,
): void {
  callback(null, address, 4);
}

/** Closes an fd no Node handle owns yet. */
function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already gone
  }
}

/** The names an answer's addresses are bound to: its chain up to the last name owning one. */
function boundNames(a: {
  names: string[];
  addresses: readonly { ownerIndex: number }[];
}): string[] {
  let last = 0;
  for (const r of a.addresses) if (r.ownerIndex > last) last = r.ownerIndex;
  return last + 1 === a.names.length ? a.names : a.names.slice(0, last + 1);
}
