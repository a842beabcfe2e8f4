// moat's event: what every sink (stdout, audit log, history, API subscribers, OpenTelemetry,
// publishers) receives for a connection's verdict and its close, and its one-line form (the
// audit log's and the daemon's output). The kernel's records are decoded
// into it (events.ts); moat's DNS proxy sends one per query (type "dns"). Fields are added, never renamed or given another meaning.
import type { ProcessFacts } from "../attribution/types.ts";
import { printable } from "../config/printable.ts";

/**
 * "dns": a query moat's DNS proxy answered or refused (docs/dns.md); its `dns` field says what.
 * "flow": a summary of connections (allowed ones included) over a window, in the history only;
 * its `flow` field has the totals and `verdict` the connections' verdict (docs/observability.md).
 * "anomaly": something an identity did far from its baseline (docs/anomaly.md); its `anomaly`
 * field says what, against which baseline and threshold, with sample flows.
 * "exe_changed": the content of an executable path behind connections changed (an upgrade, a
 * replaced binary); its `executable` field says which, from what to what (docs/anomaly.md).
 */
export type EventKind =
  "allowed" | "blocked" | "detected" | "closed" | "dns" | "flow" | "anomaly" | "exe_changed";
export type EventReason =
  | "new"
  | "rejudged"
  | "untracked"
  | "fin"
  | "rst"
  | "max_duration"
  | "redirected"
  /** a redirect's target did not listen; `redirect` names it (failure.helper decided) */
  | "unavailable"
  /** judged by `dns:doh`: a connection to a DoH/DoT resolver with `dns: { doh: block }` */
  | "doh"
  /** judged by `l7:quic`: UDP 443 (QUIC) of a process that L7 web rules judge (docs/l7-quic.md) */
  | "quic"
  /** the SNI moat read from the QUIC Initial of a UDP 443 flow judged before (docs/l7-quic.md) */
  | "quic_initial"
  /** type "flow": a summary of connections */
  | "summary"
  /** type "anomaly": an anomaly detector's report */
  | "anomaly"
  /** type "exe_changed": an executable path's content changed */
  | "exe_changed"
  /** packets of a source over its rule's rate limit (docs/policy.md, "rate_limit") */
  | "rate_limit"
  /** TCP packets with an invalid flag combination (docs/policy.md, "Scrubbing") */
  | "tcp_flags"
  /** UDP from an amplification port over its per-source limit (docs/policy.md, "flood") */
  | "udp_amplification"
  /** ICMP packets longer than flood.icmp.max_size (docs/policy.md, "flood") */
  | "icmp_size"
  /** a port's SYN flood started or ended (docs/policy.md, "flood"); `attack` says which */
  | "syn_flood"
  /** an ids signature matched the first bytes of the connection (docs/policy.md, "ids") */
  | "ids";

export interface Endpoint {
  ip: string;
  port: number;
  /**
   * remote only: the names the connection's process learned for this address from trusted DNS
   * answers (and /etc/hosts), when moat knows any (docs/dns.md).
   */
  names?: string[];
}

/** A DNS query and its answer, as moat's DNS proxy saw them. */
export interface DnsExchange {
  /** The name asked. */
  query: string;
  /** The record type asked, e.g. "A", "AAAA", "HTTPS". */
  qtype: string;
  /** The answer's rcode ("NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", ...). */
  rcode: string;
  /** The answer's addresses (else the last name of its CNAME chain). */
  answers: string[];
  /** Whether the server is a trusted resolver (only its answers bind names). */
  trusted: boolean;
  /** The names bound to the answer's addresses: the query and its CNAME chain. */
  names?: string[];
}

/**
 * What moat read of a QUIC flow's Initial packets (docs/l7-quic.md): the ClientHello's
 * server name and offers. `quic` says the facts come from QUIC, not a TCP handshake.
 */
export interface QuicLayer7 {
  tls: { sni?: string; version: string; alpn: string[]; ech: boolean };
  quic: true;
}

export interface MoatEvent {
  time: string;
  type: EventKind;
  mode: "detect" | "prevent";
  rule: string;
  direction: "ingress" | "egress";
  protocol: string;
  local: Endpoint;
  remote: Endpoint;
  interface: string | null;
  /** The local socket's owner, when a socket hook saw it (else null). */
  process: ProcessFacts | null;
  /**
   * What moat saw of the application protocol: the name a blocked DNS query asked, the facts
   * moat's L7 relay judged (http, tls, ssh; {} = a protocol it could not tell), or a QUIC flow's
   * ClientHello (reason "quic_initial").
   */
  layer7: null | EventLayer7;
  /** Connection id (hex), the same for a connection's verdict and its close; null if untracked. */
  connection: string | null;
  /** Why the event was sent: a new connection, a reload changed its verdict, or how it closed. */
  reason: EventReason;
  /** The connection's verdict (for "closed": the verdict it had). */
  verdict: "allowed" | "blocked" | "detected";
  /** icmp / icmpv6 type and code of the connection's first packet. */
  icmp?: { type: number; code: number };
  /**
   * rate_limit: the packets of this source over the limit since its previous report (one report
   * per source per `report_every`); tcp_flags: the invalid packets since the previous report of
   * the CPU that saw them (one a second at most).
   */
  aggregated?: { packets: number };
  /** closed: both directions, first packet to last; flow: the totals, the longest duration. */
  stats?: { packets: number; bytes: number; durationMs: number };
  /** type "flow": the totals of the connections it summarises. */
  flow?: FlowTotals;
  /**
   * The hook that caused the event: a packet (xdp, tc), a socket call (connect, sendmsg), the
   * post-route check of a connection's first packet (post_route: judged by the real interface),
   * a local socket receiving a new connection (accept), moat's DNS proxy (dns_proxy) or moat's
   * L7 relay (l7_relay), moat ssh-authkeys (ssh_authkeys), or a QUIC flow's first datagrams
   * copied by the cgroup egress program (quic_initial).
   */
  hook:
    | "xdp"
    | "tc"
    | "connect"
    | "sendmsg"
    | "post_route"
    | "accept"
    | "dns_proxy"
    | "l7_relay"
    | "ssh_authkeys"
    | "quic_initial";
  /** Policy generation that judged the connection. */
  generation: number;
  /** Sent to a proxy by this redirect (docs/redirect.md); local/remote are what the client asked. */
  redirect?: { name: string; to: Endpoint };
  /** reason "syn_flood": the attack's start or end on a defended port (null: every port). */
  attack?: SynFloodAttack;
  /** type "dns": the query and its answer. */
  dns?: DnsExchange;
  /** type "anomaly": what was odd, against which baseline (docs/anomaly.md). */
  anomaly?: AnomalyFacts;
  /** type "exe_changed": the path, its content before and after, the identity (docs/anomaly.md). */
  executable?: ExecutableChange;
  /** hook l7_relay: how the relay left the data path once the connection was decided. */
  relay?: { splice: "sockmap" | "splice" | "copy" | "none" };
  /**
   * The rule matched through a feed or a dynamic set (docs/policy.md, "Feeds and dynamic
   * sets"): its name, kind, and the feed's category and confidence when the policy gives them.
   */
  feed?: { name: string; kind: "feed" | "dynamic"; category?: string; confidence?: number };
  /** reason "ids": the signature that matched (docs/policy.md, "ids"). */
  ids?: IdsMatchFacts;
}

/** What an ids event says of the signature that matched and where. */
export interface IdsMatchFacts {
  sid: number;
  rev?: number;
  msg: string;
  classtype?: string;
  /** The signature's action: alert reports; drop and reject cut under ids.mode prevent. */
  action: "alert" | "drop" | "reject";
  /** Which way the matched bytes went: to the server (from the side that opened it) or back. */
  flow: "to_server" | "to_client";
  /** Where the signature is written: FILE:LINE:COL. */
  source: string;
  /** prevent: whether the connection was cut (its local socket destroyed, its entry blocked). */
  cut?: boolean;
}

/**
 * An executable path seen with a content it never had: identities stay keyed by the path (an
 * upgrade keeps its baselines), and the change is said once.
 */
export interface ExecutableChange {
  path: string;
  /** sha256 of the content seen before, and of the new one (hex). */
  oldHash: string;
  newHash: string;
  /** The identity (executable, user, cgroup, container) whose connection showed the change. */
  identity: { exe: string; user: number; cgroup: string; container: string };
}

/** type "anomaly" (docs/anomaly.md). */
/** What was odd. */
export type AnomalyKind =
  /** A destination (registrable domain or prefix, with port) the identity never used before. */
  | "new_destination"
  /** An hour's or a day's connections, bytes or longest connection far above the identity's. */
  | "volume"
  /** Connections to one destination at regular intervals with regular sizes. */
  | "beacon"
  /** Many random-looking names under one domain in a short time. */
  | "dns_entropy"
  /** Many NXDOMAIN answers in a short time. */
  | "dns_nxdomain";

/** A flow (or query) an anomaly points at. */
export interface AnomalySample {
  /** ISO time. */
  time: string;
  remote: string;
  /** The peer's DNS name where known. */
  name?: string;
  port: number;
  protocol: string;
  bytes: number;
  durationMs: number;
}

/** What an anomaly event carries in its `anomaly` field. */
export interface AnomalyFacts {
  /** Stable per (kind, identity, key): what `moat anomalies accept` names. */
  id: string;
  kind: AnomalyKind;
  /** The identity (executable, user, cgroup, container) it is about; `nameOnly`: `exe` is the
   * process's name (comm), its executable unread, never a path. */
  identity: { exe: string; nameOnly?: true; user: number; cgroup: string; container: string };
  /** What the value is about: a destination, a metric ("bytes/hour"), a domain. */
  key: string;
  /** One sentence: what was seen against what was usual. */
  summary: string;
  /** The measure judged (e.g. "bytes per hour", "beacon score"). */
  metric: string;
  value: number;
  threshold: number;
  /** What the value was compared with (median and spread, samples, known destinations, ...). */
  baseline: Record<string, number | string>;
  samples: AnomalySample[];
}

/**
 * A SYN flood on a defended port: started (the rate went over the threshold) or ended (no SYN over
 * it for the hold time). In prevent mode moat answered the port's SYNs with its cookies meanwhile;
 * in detect mode the kernel answered them and this is what prevent would have done.
 */
export interface SynFloodAttack {
  state: "started" | "ended";
  /** The defended port (null: every port, one bucket). */
  port: number | null;
  /** SYNs to the port and SYNs over its rate, since the attack started. */
  syns: number;
  over: number;
  /** ended: how long the attack lasted, hold time included. */
  durationMs?: number;
  /** Who answered the SYNs: moat's cookies, or the kernel (detect mode, or no cookie kfunc). */
  answered: "moat" | "kernel";
}

/** The totals of a "flow" event: its connections over one window. */
export interface FlowTotals {
  /** Connections first seen in the window. */
  connections: number;
  /** Connections that ended in the window (closed, expired or evicted). */
  closed: number;
  /** Both directions, in the window. */
  packets: number;
  bytes: number;
  /** Of the connections that ended: their durations added up, and the longest. */
  durationMsSum: number;
  durationMsMax: number;
  /** The window's first and last record (ms since the epoch). */
  firstMs: number;
  lastMs: number;
}

/** The layer7 facts of an event (src/policy/facts.ts Layer7Facts, as reported). */
export interface EventLayer7 {
  dns?: { name: string };
  /** The tls facts were read from a QUIC flow's Initials. */
  quic?: true;
  http?: Record<string, unknown> & { method?: string; host?: string; path?: string };
  tls?: Record<string, unknown> & { sni?: string };
  /** Outgoing: the server's version and host key; a login judged by moat ssh-authkeys: the
   * login name and the key (fingerprint, comment). */
  ssh?: Record<string, unknown> & {
    version?: string;
    host_key?: string;
    user?: string;
    client_key?: string;
  };
}

// A value anyone can choose (a process or host name, a path, a server's version) is one field of
// the line: escaped (printable), and quoted when it holds a space or a quote, so that it cannot
// add a line, move the cursor, or read as the line's own words (" on eth0 by rule ...").
const NEEDS_QUOTES = /[\s"]/u;

/**
 * `value` as one field of an event line: escaped, and in double quotes (a quote inside written
 * \") when it holds a space or a quote.
 */
export function lineField(value: string): string {
  const text = printable(value);
  return NEEDS_QUOTES.test(text) ? inQuotes(text) : text;
}

/** Escaped text in double quotes: a quote inside is \" (a backslash is already \\). */
const inQuotes = (escaped: string) => `"${escaped.replaceAll('"', '\\"')}"`;

/** Prose, always in double quotes (a signature's message). */
const quoted = (text: string) => inQuotes(printable(text));

/** Several fields, each quoted on its own (a name may hold ", "). */
const fields = (values: readonly string[]) => values.map(lineField).join(", ");

/**
 * A word and the free text after its first space, each a field: an SSH version (its identifier,
 * then its comment, RFC 4253 4.2) or a login's key (its fingerprint, then its comment). An
 * ordinary comment ("Debian-2+deb12u6") prints as it is.
 */
function wordAndComment(text: string): string {
  const space = text.indexOf(" ");
  if (space < 0) return lineField(text);
  return `${lineField(text.slice(0, space))} ${lineField(text.slice(space + 1))}`;
}

/** What moat saw of the application protocol, as the line says it (with its leading space). */
function layer7Words(l7: EventLayer7 | null): string {
  if (l7?.ssh?.user)
    return ` SSH login ${lineField(l7.ssh.user)} key ${l7.ssh.client_key ? wordAndComment(l7.ssh.client_key) : "?"}`;
  if (l7?.dns) return ` DNS query ${lineField(l7.dns.name)}`;
  if (l7?.quic) return ` QUIC SNI ${l7.tls?.sni !== undefined ? lineField(l7.tls.sni) : "(none)"}`;
  if (l7?.tls?.sni) return ` TLS ${lineField(l7.tls.sni)}`;
  if (l7?.http) {
    const { method, host, path } = l7.http;
    // empty fields stay empty, as the line always printed them
    const hostPath = `${host ?? ""}${path ?? ""}`;
    return ` HTTP ${method ? lineField(method) : ""} ${hostPath ? lineField(hostPath) : ""}`;
  }
  if (l7?.ssh) return ` SSH ${l7.ssh.version ? wordAndComment(l7.ssh.version) : ""}`;
  return "";
}

/** The process as the line says it: "curl pid 812" (its name a field). */
const processWords = (p: ProcessFacts) => `${lineField(p.name)} pid ${p.pid}`;

/**
 * The event's line (the daemon's output, the audit log, `moat events`): ready to print, every
 * field a peer or a process chose escaped and quoted as lineField() says.
 */
export function formatEventLine(ev: MoatEvent): string {
  if (ev.anomaly) return anomalyLine(ev, ev.anomaly);
  if (ev.executable) return exeChangedLine(ev, ev.executable);
  if (ev.dns) return dnsLine(ev, ev.dns);
  const address = (p: Endpoint) => (p.ip.includes(":") ? `[${p.ip}]` : p.ip);
  // a remote with names: "github.com (140.82.112.3):443"
  const ep = (p: Endpoint) =>
    p.names?.length
      ? `${fields(p.names)} (${lineField(address(p))}):${p.port}`
      : `${lineField(address(p))}:${p.port}`;
  const [from, to] = ev.direction === "ingress" ? [ev.remote, ev.local] : [ev.local, ev.remote];
  const on = ev.interface ? ` on ${lineField(ev.interface)}` : "";
  const query = layer7Words(ev.layer7);
  const line = `${ev.time} ${ev.type.toUpperCase()} ${ev.direction} ${ev.protocol} ${ep(from)} -> ${ep(to)}${query}${on} by rule ${lineField(ev.rule)}`;
  const who = ev.process ? ` (${processWords(ev.process)})` : "";
  if (ev.type === "closed" && ev.stats) {
    const reason = ev.reason.replace("_", " ");
    const s = ev.stats;
    return `${line}${who} (${reason}, ${s.packets} packets, ${s.bytes} bytes, ${(s.durationMs / 1000).toFixed(1)} s)`;
  }
  if (ev.reason === "rejudged") return `${line}${who} (policy reloaded)`;
  if (ev.reason === "max_duration") return `${line}${who} (past max_duration)`;
  if (ev.reason === "rate_limit")
    return `${line}${who} (over the rate limit: ${ev.aggregated?.packets ?? 0} packets)`;
  if (ev.reason === "syn_flood" && ev.attack) return attackLine(ev, ev.attack);
  if (ev.reason === "udp_amplification")
    return `${line} (UDP amplification: ${ev.aggregated?.packets ?? 0} packets over the limit)`;
  if (ev.reason === "icmp_size")
    return `${line} (oversized ICMP: ${ev.aggregated?.packets ?? 0} packets)`;
  if (ev.reason === "ids" && ev.ids)
    return `${line}${who} (ids sid ${ev.ids.sid} ${quoted(ev.ids.msg)} ${lineField(ev.ids.flow)}${ev.ids.cut ? ", connection cut" : ""})`;
  if (ev.reason === "tcp_flags")
    return `${line} (invalid TCP flags: ${ev.aggregated?.packets ?? 0} packets)`;
  if (ev.redirect && ev.reason === "unavailable")
    return `${line}${who}, redirect ${lineField(ev.redirect.name)}: ${ep(ev.redirect.to)} is unavailable`;
  if (ev.redirect)
    return `${line}${who}, redirected to ${ep(ev.redirect.to)} by redirect ${lineField(ev.redirect.name)}`;
  // judged by the interface the packet really left by, not the route mirror's
  if (ev.hook === "post_route") return `${line}${who} (after routing)`;
  return line + who;
}

/** "... BLOCKED ingress tcp SYN flood on port 8080 started (120 SYNs, 80 over the rate) ...". */
function attackLine(ev: MoatEvent, a: SynFloodAttack): string {
  const port = a.port === null ? "every port" : `port ${a.port}`;
  const lasted = a.durationMs !== undefined ? `, ${(a.durationMs / 1000).toFixed(1)} s` : "";
  const who = a.answered === "moat" ? "moat's SYN cookies" : "the kernel";
  return `${ev.time} ${ev.type.toUpperCase()} ${ev.direction} tcp SYN flood on ${port} ${a.state} (${a.syns} SYNs, ${a.over} over the rate${lasted}; answered by ${who}) by rule ${lineField(ev.rule)}`;
}

/** "... DNS egress curl pid 812 asked 10.0.0.53 A github.com: NOERROR 140.82.112.3". */
function dnsLine(ev: MoatEvent, d: DnsExchange): string {
  const who = ev.process ? processWords(ev.process) : `${lineField(ev.local.ip)}:${ev.local.port}`;
  const trust = d.trusted ? "" : " (untrusted server: no names bound)";
  const answers = d.answers.length ? ` ${fields(d.answers)}` : "";
  return `${ev.time} DNS ${ev.direction} ${who} asked ${lineField(ev.remote.ip)} ${lineField(d.qtype)} ${lineField(d.query)}: ${lineField(d.rcode)}${answers}${trust}`;
}

/** "... ANOMALY beacon 3f2a... /usr/bin/curl (curl pid 812): 20 connections to ...". */
function anomalyLine(ev: MoatEvent, a: AnomalyFacts): string {
  const who = ev.process ? ` (${processWords(ev.process)})` : "";
  const exe = a.identity.exe
    ? ` ${a.identity.nameOnly ? "name:" : ""}${lineField(a.identity.exe)}`
    : "";
  // the summary is prose, last on the line: escaped, not quoted
  return `${ev.time} ANOMALY ${a.kind} ${lineField(a.id)}${exe}${who}: ${printable(a.summary)}`;
}

/** "... EXE_CHANGED /usr/bin/curl sha256 ab12... -> cd34... (curl pid 812, user 1000, cgroup /user.slice)". */
function exeChangedLine(ev: MoatEvent, x: ExecutableChange): string {
  const p = ev.process;
  const who = p ? `${processWords(p)}, ` : "";
  const container = x.identity.container ? `, container ${lineField(x.identity.container)}` : "";
  return `${ev.time} EXE_CHANGED ${lineField(x.path)} sha256 ${lineField(x.oldHash)} -> ${lineField(x.newHash)} (${who}user ${x.identity.user}, cgroup ${lineField(x.identity.cgroup)}${container})`;
}
