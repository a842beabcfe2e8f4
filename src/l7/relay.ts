// moat's L7 relay (docs/l7.md): the kernel sends it the connections an L7 rule may judge (quiet
// `l7-relay` redirects, taken only when the rule chosen at connect() is an L7 rule). For each, the
// relay learns the original destination and the owner from the kernel's record, reads the first
// bytes (header timeout, bounded), tells the protocol, and hands the connection to that
// protocol's handler, which judges it with the whole policy and either resets the client or
// connects upstream and leaves the data path. Before the decision no byte reaches the server,
// except for SSH the key exchange's first messages (the host key comes in its answer).
// Its own connections are never redirected (moat's pid is exempt).
import { connect, createServer, type Server, type Socket } from "node:net";
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import type { PolicyModel } from "../config/model.ts";
import type { MoatEvent, OriginalDestination, SocketAddress } from "../datapath/index.ts";
import type { ConnectionFacts, Layer7Facts } from "../policy/facts.ts";
import { relayProtocols } from "../policy/index.ts";
import { decide, mayForward, pendingMatters } from "./decide.ts";
import { l7Event } from "./l7-event.ts";
import { readHead, type HeadRead } from "./read-head.ts";
import {
  ConnectionCount,
  openFileLimit,
  RefusalLog,
  relayLimits,
  type RelayLimits,
  type Slot,
} from "./relay-limits.ts";
import { mayBecomeRequestLine, mayBecomeTls, sniffer, type Sniffed } from "./sniff.ts";
import { parseErrorResponse, TIMEOUT_RESPONSE } from "./http/refusals.ts";
import { httpHandler } from "./http/index.ts";
import { sshHandler } from "./ssh/handler.ts";
import { tlsHandler } from "./tls/handler.ts";
import {
  NothingForwards,
  type L7Context,
  type L7Decision,
  type L7Handler,
  type SpliceMode,
} from "./types.ts";

export type L7Protocol = "tls" | "http" | "ssh";

export interface L7RelayOptions {
  /** The kernel's record of a redirected client, by its address as the relay sees it. */
  original: (peer: SocketAddress) => OriginalDestination | null;
  process: (owner: KernelOwner) => ProcessFacts;
  /** The names this owner's lookups gave the address (moat's DNS proxy); none: []. */
  names: (owner: KernelOwner, ip: string) => string[];
  /** The running policy; null before the first. */
  policy: () => PolicyModel | null;
  generation: () => number;
  report: (event: MoatEvent) => void;
  log: (line: string) => void;
  /** Protocol handlers in place of moat's own (tests). */
  handlers?: Partial<Record<L7Protocol, L7Handler>>;
  /**
   * Hands both sockets to the kernel; default: copy both ways in this process. `signal`
   * aborted: reset both sides; `onEnd`: both directions ended.
   */
  splice?: (client: Socket, upstream: Socket, o: SpliceControl) => Promise<SpliceMode>;
  /**
   * Connects to the original destination for `purpose`, through moat's hooks as the relay
   * decided (daemon: a socket whose kernel record carries the decision); default: a plain TCP
   * connect.
   */
  connectUpstream?: (to: { ip: string; port: number }, purpose: UpstreamPurpose) => Promise<Socket>;
  headerTimeoutMs?: number;
  /** Bytes buffered before a decision, at most. */
  maxHead?: number;
  /**
   * Connections held at once, in all and per owner uid; default: from the process's
   * RLIMIT_NOFILE (./relay-limits.ts).
   */
  limits?: RelayLimits;
  /** Connections reset over the limits are logged once per this interval (ms). */
  refusalLogMs?: number;
}

export interface SpliceControl {
  signal: AbortSignal;
  onEnd: () => void;
}

/** The decision an upstream connection carries out, as moat's hooks record it. */
export interface UpstreamPurpose {
  /** The deciding rule's name ("default": the egress default). */
  rule: string;
  verdict: "allowed" | "detected";
  /** Whom it connects for: the client's owner; moat itself for a probe. */
  owner: KernelOwner | null;
  /** moat's own look at the server (a TLS probe) while the connection is still being judged. */
  probe: boolean;
}

/** What the relay did, since start. */
export interface L7RelayStats {
  /** Connections the kernel sent. */
  accepted: number;
  /** Without a kernel record (not redirected by moat): closed. */
  unknownClient: number;
  sniffed: Record<Sniffed | "none", number>;
  allowed: number;
  blocked: number;
  detected: number;
  /** Handler or upstream failures (the client was reset). */
  failed: number;
  /** Spliced connections a reload no longer let through: both sides reset. */
  cut: number;
  /** Reset at once: their uid, or the users other than root together, held their share. */
  overLimit: number;
}

/** A spliced connection, as its last forwarding judgement saw it, for re-judging on reload. */
interface Spliced {
  facts: ConnectionFacts;
  layer7: Layer7Facts;
  cut: AbortController;
  event: (decision: L7Decision) => MoatEvent;
}

const HEADER_TIMEOUT_MS = 10_000;
const MAX_HEAD = 16 * 1024;
/** How long a client may stay silent before the server is taken to speak first (SSH). */
const SERVER_FIRST_MS = 300;
const REFUSAL_LOG_MS = 10_000;
/** moat's protocol handlers, by what the first bytes say. */
const DEFAULT_HANDLERS: Record<L7Protocol, L7Handler> = {
  tls: tlsHandler,
  http: httpHandler(),
  ssh: sshHandler,
};

function listen(host: string, onConnection: (s: Socket) => void): Promise<Server | null> {
  const server = createServer({ pauseOnConnect: true }, onConnection);
  return new Promise((resolve) => {
    server.once("error", () => resolve(null));
    server.listen({ host, port: 0, exclusive: true }, () => resolve(server));
  });
}

/** Copies both ways until either side ends (half-close passed on); the fallback splice. */
export function copyBothWays(
  client: Socket,
  upstream: Socket,
  o: SpliceControl,
): Promise<SpliceMode> {
  const reset = () => {
    client.resetAndDestroy();
    upstream.resetAndDestroy();
  };
  o.signal.addEventListener("abort", reset, { once: true });
  client.once("close", () => {
    o.signal.removeEventListener("abort", reset);
    o.onEnd();
  });
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
  return Promise.resolve("copy");
}

function plainConnect(to: { ip: string; port: number }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: to.ip, port: to.port, noDelay: true });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

const unmapped = (ip: string) => (ip.startsWith("::ffff:") ? ip.slice(7) : ip);

/**
 * The client's address in its connection's family. The kernel sends IPv6 sockets to the relay's
 * IPv4 address as `::ffff:127.0.0.1`, so the relay's socket sees such a client as 127.0.0.1
 * while the client's own socket (and the kernel's record, keyed by it) has `::ffff:127.0.0.1`.
 */
function inFamily(ip: string, family: 4 | 6): string {
  if (family === 4) return unmapped(ip);
  return ip.includes(":") ? ip : `::ffff:${ip}`;
}

/** Whether a policy judges SSH servers, once per policy (not once per connection over its rules). */
const judgesSsh = new WeakMap<PolicyModel, boolean>();
function serverMaySpeakFirst(model: PolicyModel): boolean {
  let known = judgesSsh.get(model);
  if (known === undefined) {
    known = model.rules.some((r) => relayProtocols(r).includes("ssh"));
    judgesSsh.set(model, known);
  }
  return known;
}

/**
 * Two layer7 facts that differ at most in tls.pending (as a TLS handler's judgements "as if the
 * facts not seen matched" and "as if they did not" do), compared member by member.
 */
function samePastPending(a: Layer7Facts, b: Layer7Facts): boolean {
  const ta = a.tls;
  const tb = b.tls;
  if (!ta || !tb || !sameMembers(a, b, "tls")) return false;
  return sameMembers(ta, tb, "pending");
}

function sameMembers<T extends object>(a: T, b: T, except: keyof T): boolean {
  const ka = Object.keys(a) as (keyof T)[];
  const kb = Object.keys(b) as (keyof T)[];
  const count = (keys: (keyof T)[]) => keys.filter((k) => k !== except).length;
  if (count(ka) !== count(kb)) return false;
  return ka.every((k) => k === except || (k in b && a[k] === b[k]));
}

export class L7Relay {
  readonly stats: L7RelayStats = {
    accepted: 0,
    unknownClient: 0,
    sniffed: { tls: 0, http: 0, ssh: 0, unknown: 0, more: 0, none: 0 },
    allowed: 0,
    blocked: 0,
    detected: 0,
    failed: 0,
    cut: 0,
    overLimit: 0,
  };
  private readonly sockets = new Set<Socket>();
  private readonly spliced = new Set<Spliced>();
  private readonly servers: { 4: Server | null; 6: Server | null } = { 4: null, 6: null };

  private readonly options: L7RelayOptions;
  private readonly held: ConnectionCount;
  private readonly refusals: RefusalLog;

  private constructor(options: L7RelayOptions) {
    this.options = options;
    this.held = new ConnectionCount(options.limits ?? relayLimits(openFileLimit()));
    this.refusals = new RefusalLog(options.refusalLogMs ?? REFUSAL_LOG_MS, (line) =>
      options.log(`l7 relay: ${line}`),
    );
  }

  static async open(options: L7RelayOptions): Promise<L7Relay> {
    const relay = new L7Relay(options);
    const handle = (s: Socket) => void relay.accept(s);
    [relay.servers[4], relay.servers[6]] = await Promise.all([
      listen("127.0.0.1", handle),
      listen("::1", handle),
    ]);
    return relay;
  }

  /** Where the kernel sends connections of this address family (null: no loopback for it). */
  addressFor(family: 4 | 6): SocketAddress | null {
    const bound = this.servers[family]?.address();
    if (!bound || typeof bound === "string") return null;
    return { ip: bound.address, port: bound.port };
  }

  close(): void {
    for (const s of [this.servers[4], this.servers[6]]) s?.close();
    for (const s of this.sockets) s.destroy();
    this.refusals.close();
  }

  /**
   * After a reload: judges every spliced connection again, from the facts its last forwarding
   * judgement saw, with the running policy; those it no longer lets through are reset on both
   * sides and reported (reason `rejudged`). Returns how many were cut.
   */
  rejudge(): number {
    const model = this.options.policy();
    if (!model) return 0;
    let cut = 0;
    for (const c of this.spliced) {
      const d = decide(model, c.facts, c.layer7);
      if (d.forward) continue;
      this.spliced.delete(c);
      c.cut.abort();
      cut++;
      this.stats.cut++;
      this.options.report({ ...c.event(d), reason: "rejudged" });
    }
    return cut;
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.once("close", () => this.sockets.delete(s));
    return s;
  }

  private async accept(client: Socket): Promise<void> {
    const { log } = this.options;
    this.stats.accepted++;
    this.track(client);
    client.on("error", () => {}); // a reset client is the handler's business, not a crash
    // what the relay writes (a server's flight, a response) goes out at once, as it would direct
    client.setNoDelay(true);
    const peer = { ip: client.remoteAddress ?? "", port: client.remotePort ?? 0 };
    const found = this.options.original(peer);
    if (!found || !this.options.policy()) {
      this.stats.unknownClient++;
      log(`l7 relay: no redirected connection from ${peer.ip}:${peer.port}; closed`);
      client.destroy();
      return;
    }
    const slot = this.place(client, found.owner?.uid ?? -1);
    if (!slot) return;
    try {
      const max = this.options.maxHead ?? MAX_HEAD;
      const sniffed = sniffer();
      const enough = (h: Buffer) => sniffed(h) !== "more";
      const timeout = this.options.headerTimeoutMs ?? HEADER_TIMEOUT_MS;
      // SSH clients may wait for the server's banner before they say anything (ssh-keyscan):
      // when the policy judges SSH servers, a client silent for SERVER_FIRST_MS is SSH's
      const serverFirst = this.serverMaySpeakFirstNow();
      let read = await readHead(
        client,
        Buffer.alloc(0),
        enough,
        serverFirst ? SERVER_FIRST_MS : timeout,
        max,
      );
      const silent = serverFirst && read.end === "timeout" && read.head.length === 0;
      if (serverFirst && read.end === "timeout" && !silent)
        read = await readHead(client, read.head, enough, timeout - SERVER_FIRST_MS, max);
      if (!silent && read.end === "timeout" && read.head.length === 0) {
        // silent past the header timeout: the server may be the one to speak first (SMTP), or
        // the client may be waiting it out; whichever speaks first tells which
        const ctx = this.context(client, peer, found, read.head, "none", slot);
        const spoke = await serverOrClientFirst(ctx);
        if (!spoke) {
          this.stats.sniffed.none++;
          return;
        }
        // a first read over the head's bound: the rest goes back, as readHead leaves it
        if (spoke.length > max) client.unshift(spoke.subarray(max));
        read = await readHead(client, spoke.subarray(0, max), enough, timeout, max);
      }
      const kind = silent ? "ssh" : this.tell(read, sniffed);
      this.stats.sniffed[kind]++;
      if (kind === "more" && mayBecomeRequestLine(read.head)) {
        unfinishedRequestLine(client, read.end, (line) => log(`l7 relay: ${line}`));
        return;
      }
      const ctx = this.context(client, peer, found, read.head, kind, slot);
      const handler =
        kind === "tls" || kind === "http" || kind === "ssh"
          ? (this.options.handlers?.[kind] ?? DEFAULT_HANDLERS[kind])
          : undefined;
      // a protocol moat cannot tell (or has no handler for) is judged without layer7 facts; where
      // the policy judges SSH it may be SSH after lines a server skips: judged as SSH unseen
      const unknown = this.serverMaySpeakFirstNow() ? unknownMaybeSsh : unknownProtocol;
      await (handler ?? unknown)(ctx);
    } catch (err) {
      this.stats.failed++;
      log(
        `l7 relay: ${peer.ip}:${peer.port} -> ${found.original.ip}:${found.original.port}: ${(err as Error).message}`,
      );
      if (!client.destroyed) client.resetAndDestroy();
    }
  }

  /** What the head read is: a protocol, or "none" (nothing), "more" or "unknown". */
  private tell(read: HeadRead, sniffed: (head: Buffer) => Sniffed): Sniffed | "none" {
    if (read.head.length === 0) return "none";
    const told = sniffed(read.head);
    // the start of a TLS record, cut short by the header timeout: TLS's handler reads the rest
    // (within its own hello timeout), never the server unjudged
    return told === "more" && mayBecomeTls(read.head) ? "tls" : told;
  }

  /**
   * The client's place among the relay's connections, given back when it closes (once spliced,
   * when the splice ends: the kernel's copy of its descriptors lives on); null when its uid is
   * over the limits: then it is reset, counted and logged with the others of the interval.
   */
  private place(client: Socket, uid: number): (Slot & { spliced(): void }) | null {
    const slot = this.held.take(uid);
    if (!slot) {
      this.stats.overLimit++;
      this.refusals.count(uid);
      client.resetAndDestroy();
      return null;
    }
    let spliced = false;
    client.once("close", () => {
      if (!spliced) slot.release();
    });
    return { release: () => slot.release(), spliced: () => (spliced = true) };
  }

  /**
   * Whether the live policy judges SSH servers (read here, not kept: a connection holds no policy
   * while it waits, or a long one would keep a policy a reload replaced).
   */
  private serverMaySpeakFirstNow(): boolean {
    const model = this.options.policy();
    return model !== null && serverMaySpeakFirst(model);
  }

  /** The live policy (one is running: a connection is accepted only then). */
  private livePolicy(): PolicyModel {
    const model = this.options.policy();
    if (!model) throw new Error("no policy is running");
    return model;
  }

  private context(
    client: Socket,
    peer: SocketAddress,
    found: OriginalDestination,
    head: Buffer,
    kind: Sniffed | "none",
    slot: Slot & { spliced(): void },
  ): L7Context {
    const o = this.options;
    const ip = unmapped(found.original.ip);
    const family: 4 | 6 = ip.includes(":") ? 6 : 4;
    const owner = found.owner;
    const process = owner ? o.process(owner) : null;
    const names = owner ? o.names(owner, ip) : [];
    // the client as its own socket has it (an IPv6 one as IPv6), for the judge and the events
    const local = { ip: inFamily(peer.ip, family), port: peer.port };
    const facts: ConnectionFacts = {
      direction: "egress",
      protocol: "tcp",
      family,
      local,
      // in the relay the names are known: those this identity resolved to the address
      remote: { ip, port: found.original.port, names },
      ...(process ? { process } : {}),
    };
    // the judge and the events follow the policy of the connection's generation... or the live
    // one after a reload: the live one decides what may pass now
    const generation = found.generation || o.generation();
    const track = (s: Socket) => this.track(s);
    const stats = this.stats;
    // the latest judgement that lets the connection through: what its upstream carries out. A
    // connection judged only "blocked" opens nothing
    let forwarding: L7Decision | null = null;
    let forwardedFacts: Layer7Facts = {};
    // the facts of the latest judgement (none yet: the sniffed protocol's, all unknown)
    let latest: Layer7Facts | null = null;
    // the last judgement: a TLS handler's second one, which differs only in how facts not seen
    // yet count, is the same when no condition of the policy reads them (and, as a certificate's
    // expiry is judged by the clock, in the same millisecond)
    // (its policy by a weak reference: a connection open across reloads keeps none of them)
    let last: {
      model: WeakRef<PolicyModel>;
      layer7: Layer7Facts;
      decision: L7Decision;
      at: number;
    } | null = null;
    const judge = (layer7: Layer7Facts) => {
      const now = this.livePolicy();
      const at = Date.now();
      const same =
        last !== null &&
        last.model.deref() === now &&
        last.at === at &&
        layer7.tls !== undefined &&
        samePastPending(last.layer7, layer7) &&
        !pendingMatters(now, layer7.tls);
      const d = same && last ? last.decision : decide(now, facts, layer7);
      last = { model: new WeakRef(now), layer7, decision: d, at };
      latest = layer7;
      if (d.forward) {
        forwarding = d;
        forwardedFacts = layer7;
      }
      return d;
    };
    const event = (decision: L7Decision, layer7: Layer7Facts, splice?: SpliceMode) =>
      l7Event({
        decision,
        layer7,
        client: local,
        original: { ip, port: found.original.port, names },
        process,
        generation,
        ...(splice ? { splice } : {}),
      });
    // nothing forwards yet (the SSH handler needs the server's host key to judge; the TLS one
    // judged only as if the facts the handshake has not shown matched, and as if they did not):
    // an outcome the facts not known yet may still lead to. A judgement on every fact it needs
    // (a blocked request, a refused key) leaves none
    // (the protocol as the relay took it: a client silent until the server speaks has no head to
    // tell it by)
    const candidate = (): L7Decision | null => {
      const unknown: Layer7Facts = kind === "ssh" ? { ssh: {} } : kind === "tls" ? { tls: {} } : {};
      return mayForward(this.livePolicy(), facts, latest ? undecided(latest) : unknown);
    };
    const connectUpstream = async (purpose?: "probe") => {
      const d: L7Decision | null = forwarding ?? candidate();
      if (!d || d.verdict === "blocked") throw new NothingForwards();
      const to = { ip, port: found.original.port };
      const why: UpstreamPurpose = {
        rule: d.rule,
        verdict: d.verdict,
        owner: purpose === "probe" ? null : owner,
        probe: purpose === "probe",
      };
      const upstream = await (o.connectUpstream ?? plainConnect)(to, why);
      // a server's reset is that connection's end (its handler sees the close), never an
      // unhandled 'error' that would end the daemon
      upstream.on("error", () => {});
      return track(upstream);
    };
    const ctx: L7Context = {
      client,
      head,
      original: { ip, port: found.original.port, family },
      facts,
      judge,
      connectUpstream,
      report(decision: L7Decision, layer7: Layer7Facts, extra?: { splice?: SpliceMode }) {
        stats[decision.verdict]++;
        if (decision.verdict === "allowed" && !decision.report) return;
        o.report(event(decision, layer7, extra?.splice));
      },
      splice: async (c: Socket, u: Socket) => {
        u.on("error", () => c.destroy());
        c.on("error", () => u.destroy());
        c.once("close", () => u.destroy());
        u.once("close", () => c.destroy());
        const layer7 = forwardedFacts;
        const entry: Spliced = {
          facts,
          layer7,
          cut: new AbortController(),
          event: (d) => ({ ...event(d, layer7, mode), generation: o.generation() }),
        };
        let mode: SpliceMode | undefined;
        this.spliced.add(entry);
        slot.spliced();
        const onEnd = () => {
          this.spliced.delete(entry);
          slot.release();
        };
        try {
          mode = await (o.splice ?? copyBothWays)(c, u, { signal: entry.cut.signal, onEnd });
        } catch (err) {
          onEnd();
          throw err;
        }
        return mode;
      },
      log: (line: string) => o.log(`l7 relay: ${line}`),
    };
    return ctx;
  }
}

/**
 * A head that could still become an HTTP request line when reading stopped (header timeout, the
 * head's bound, the client's end): closed, nothing forwarded, as an HTTP server would. Forwarding
 * it unjudged would let a client pass any request by sending its first byte alone and waiting.
 */
function unfinishedRequestLine(client: Socket, end: HeadRead["end"], log: (line: string) => void) {
  log(`no complete HTTP request line (${end}); closed`);
  if (end === "closed" || !client.writable) return void client.destroy();
  client.end(end === "full" ? parseErrorResponse("HPE_HEADER_OVERFLOW") : TIMEOUT_RESPONSE);
  client.destroySoon();
}

/**
 * A client silent past the header timeout, judged as a protocol moat cannot tell: when that
 * judgement lets it through, the server is asked and the first to speak decides. The server:
 * its bytes go to the client and the two are spliced (null). The client: the server, which has
 * seen no byte, is closed, and the client's first bytes are returned to be told and judged as if
 * they had come in time. Blocked, or either side gone first: null.
 */
async function serverOrClientFirst(ctx: L7Context): Promise<Buffer | null> {
  const { client } = ctx;
  const decision = ctx.judge({});
  if (!decision.forward) {
    ctx.report(decision, {});
    client.resetAndDestroy();
    return null;
  }
  const upstream = await ctx.connectUpstream();
  const first = await new Promise<{ from: "server" | "client"; bytes: Buffer } | null>(
    (resolve) => {
      const done = (spoke: { from: "server" | "client"; bytes: Buffer } | null) => {
        upstream.off("data", onServer);
        client.off("data", onClient);
        upstream.off("close", onClose);
        client.off("close", onClose);
        upstream.pause();
        client.pause();
        resolve(spoke);
      };
      const onServer = (bytes: Buffer) => done({ from: "server", bytes });
      const onClient = (bytes: Buffer) => done({ from: "client", bytes });
      const onClose = () => done(null);
      upstream.on("data", onServer);
      client.on("data", onClient);
      upstream.once("close", onClose);
      client.once("close", onClose);
      client.resume();
    },
  );
  if (!first) {
    client.destroy();
    upstream.destroy();
    return null;
  }
  if (first.from === "client") {
    upstream.destroy();
    return first.bytes;
  }
  client.write(first.bytes);
  const splice = await ctx.splice(client, upstream);
  ctx.report(decision, {}, { splice });
  return null;
}

/** Judged with no layer7 facts: L7 rules do not match it; later rules or the defaults decide. */
const unknownProtocol = (ctx: L7Context) => judgedAs(ctx, {});

/**
 * Judged as SSH with neither version nor host key seen (the handler's own `ssh: {}`): a rule
 * blocking SSH blocks it, one allowing only pinned keys or versions does not let it through.
 */
const unknownMaybeSsh = (ctx: L7Context) => judgedAs(ctx, { ssh: {} });

async function judgedAs(ctx: L7Context, layer7: Layer7Facts): Promise<void> {
  const decision = ctx.judge(layer7);
  if (!decision.forward) {
    ctx.report(decision, layer7);
    ctx.client.resetAndDestroy();
    return;
  }
  const upstream = await ctx.connectUpstream();
  if (ctx.head.length > 0) upstream.write(ctx.head);
  const splice = await ctx.splice(ctx.client, upstream);
  ctx.report(decision, layer7, { splice });
}

/** The facts as known: a TLS judgement's assumption about facts not shown yet left out. */
function undecided(layer7: Layer7Facts): Layer7Facts {
  if (!layer7.tls?.pending) return layer7;
  const { pending: _pending, ...tls } = layer7.tls;
  void _pending;
  return { ...layer7, tls };
}
