// The normalized policy: everything the evaluator and the compiler need, already parsed and checked.
//
// Representation choices (documented in docs/policy.md too):
// - Addresses are closed intervals [start, end] of unsigned integers as bigint (32-bit for IPv4,
//   128-bit for IPv6) with the family beside them. bigint, not Buffer: the model is also used in the
//   browser; the compiler turns an interval into LPM prefixes or key bytes itself.
// - A `set:NAME` entry keeps its name and carries the set's resolved entries, so matching needs no
//   lookup and explanations can say "in set:corp".
// - Ports are closed ranges [lo, hi]; port set references are flattened (each range remembers its set).
// - Protocols are IP protocol numbers (tcp 6, udp 17, icmp 1, icmpv6 58); null = any.
// - Every section keeps the position it was written at, for diagnostics and `moat explain`.

import type { IdsSignature } from "./ids-signature.ts";
import type { SourcePos } from "./diagnostics.ts";
import type { AnomalyModel } from "./anomaly-settings.ts";
import type { Family } from "./ip.ts";
import type { DaemonFailure } from "./failure-daemon.ts";
import type { NameWildcard } from "./address-entry.ts";
import type { EventsLostChoice } from "./failure-events.ts";

export type { Family, SourcePos };
export type Direction = "ingress" | "egress";
export type RuleDirection = Direction | "any";
export type Action = "allow" | "block";
export type Mode = "detect" | "prevent";

interface EntryBase {
  /** As written, e.g. "!10.0.0.0/8" or "set:corp". */
  text: string;
  /** A leading "!": the entry excludes what it names. */
  negate: boolean;
  pos: SourcePos;
}

export interface IntervalEntry extends EntryBase {
  kind: "interval";
  family: Family;
  start: bigint;
  end: bigint;
}

/**
 * A DNS name whose learned addresses match. `wildcard`: "one" = `*.name` (exactly one label below),
 * "any" = `**.name` (any depth below); null = the name itself. Neither wildcard matches the name.
 */
export interface HostnameEntry extends EntryBase {
  kind: "hostname";
  name: string;
  wildcard: NameWildcard;
}

/** A set reference; `entries` are the set's own entries (sets do not reference other sets). */
export interface SetEntry extends EntryBase {
  kind: "set";
  set: string;
  entries: AddressEntry[];
}

export type AddressEntry = IntervalEntry | HostnameEntry | SetEntry;

/** Matches if the address is in some non-negated entry (or there are none) and in no negated one. */
export interface AddressList {
  entries: AddressEntry[];
  pos: SourcePos;
}

export interface PortRange {
  lo: number;
  hi: number;
  /** The entry as written ("8000-8999", "22") or, for a set's entry, "set:NAME". */
  text: string;
  /** The set this range came from, if any. */
  set?: string;
  pos: SourcePos;
}

export interface Layer3 {
  remote?: AddressList;
  local?: AddressList;
  pos: SourcePos;
}

export const PROTOCOL_NUMBERS = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 } as const;

export interface Layer4 {
  /** IP protocol number; null = any. */
  protocol: number | null;
  /** Server-side port ranges; undefined = any port (a rule with ports only matches tcp and udp). */
  ports?: PortRange[];
  sourcePorts?: PortRange[];
  /** ICMP type and (absent = any) code; only with icmp/icmpv6. */
  icmp?: { type: number; code?: number; pos: SourcePos };
  /** TCP only: an allowed connection older than this is reset. */
  maxDuration?: { seconds: number; pos: SourcePos };
  pos: SourcePos;
}

export interface ProcessMatch {
  /** Each list matches if any glob matches; absent = anything. */
  path?: string[];
  name?: string[];
  user?: (number | string)[];
  cgroup?: string[];
  container?: { id?: string; name?: string; image?: string };
  pos: SourcePos;
}

export interface InterfaceMatch {
  name?: string[];
  tunnel?: boolean;
  pos: SourcePos;
}

export interface HttpMatch {
  /** Name patterns, lower-cased, non-ASCII labels as A-labels. */
  host?: string[];
  method?: string[];
  path?: string[];
  /** Lower-cased header name -> glob on its value. */
  headers?: Record<string, string>;
  version?: string[];
  /** The Host header is taken as sent (default: only a name this identity resolved). */
  trust_host?: boolean;
  pos?: SourcePos;
}

export interface TlsMatch {
  sni?: string[];
  /** Comparisons like { op: ">=", version: "1.2" }. */
  version?: { op: "=" | ">=" | "<=" | ">" | "<"; version: string }[];
  /** ALPN ids: any the client offers matches. */
  alpn?: string[];
  ech?: boolean;
  certificate?: {
    subject_cn?: string;
    issuer?: string;
    valid?: boolean;
    /** Globs: any SAN matching any glob matches. */
    san?: string[];
    /** Time left before notAfter, e.g. { op: "<", days: 30 }. */
    not_after?: { op: "<" | ">"; days: number };
    /** SHA-256 fingerprints, upper-case colon form. */
    fingerprint?: string[];
  };
  unknown?: "allow" | "block";
  /**
   * Whether a fact this rule needs and moat cannot see counts as a match: `unknown` equals the
   * rule's action (a redirect has none: no).
   */
  unseenMatches?: boolean;
  /** The SNI is taken as sent (default: only a name this identity resolved). */
  trust_sni?: boolean;
  pos?: SourcePos;
}

/**
 * `name`: patterns (as hostname entries: lower-cased, A-labels) judging DNS queries (UDP/TCP port
 * 53) by the queried name; `over_tls`: true = DNS over TLS (TCP port 853), false = plain DNS
 * (port 53), decided by ports alone.
 */
export interface DnsMatch {
  name?: string[];
  over_tls?: boolean;
  pos?: SourcePos;
}

/** A public key of `layer7.ssh.client_key`, as written ("type base64 comment"). */
export interface SshClientKey {
  type: string;
  /** The key blob, base64 as written. */
  key: string;
  comment: string;
  /** The authorized_keys line moat ssh-authkeys prints. */
  text: string;
}

/**
 * Egress (moat's relay): `host_key` (SHA256 fingerprints), `version` (globs on the server's
 * version line). Ingress (moat ssh-authkeys): `client_key`, `user` (login globs).
 */
export interface SshMatch {
  host_key?: string[];
  version?: string[];
  client_key?: SshClientKey[];
  user?: string[];
  pos?: SourcePos;
}

/** The connection matches the sub-section of its own application protocol (one of them). */
export interface Layer7Match {
  http?: HttpMatch;
  tls?: TlsMatch;
  dns?: DnsMatch;
  ssh?: SshMatch;
  pos: SourcePos;
}

/** What a rule or a redirect matches. An absent section matches anything. */
export interface Match {
  direction: RuleDirection;
  layer3?: Layer3;
  layer4?: Layer4;
  process?: ProcessMatch;
  interface?: InterfaceMatch;
  layer7?: Layer7Match;
}

/** A rule's rate limit (docs/policy.md, "rate_limit"): `count` packets per `periodSeconds`. */
/** The protocols a decision may name (DECISION_PROTOCOLS in decision.ts). */
export type DecisionProtocol = "tcp" | "udp" | "icmp" | "icmpv6";

/**
 * A local decision as moat stores it (JSON) and the API shows it: a person's allow or block of one
 * destination, judged before the policy file's rules (src/config/decision.ts reads them).
 */
export interface LocalDecision {
  /** Short and unique; events and `moat explain` name the decision `decision:<id>`. */
  id: string;
  action: Action;
  direction: Direction;
  /** An IP address (a host), a DNS name (a domain) or `*.name` / `**.name` (a wildcard). */
  remote: string;
  protocol?: DecisionProtocol;
  /** The server port. */
  port?: number;
  /**
   * The executable it applies to (glob on the path), and the user running it (a uid or a user
   * name, as a rule's `process.user`; absent: every user); absent: every process.
   */
  process?: { path: string; user?: number | string };
  /** "once", "reboot", "forever" or a duration ("1h", "90s"). */
  lifetime: string;
  /** ISO time it was made. */
  created: string;
  /** ISO time it expires (durations; "once" when unused). */
  expires?: string;
  /** The boot it was made in (lifetime "reboot": gone after a reboot). */
  boot?: string;
  /** Who made it, as the audit log names them. */
  by: string;
  /** The review queue entry it answered. */
  review?: string;
}

export interface RateLimit {
  algorithm: "token_bucket" | "fixed_window" | "sliding_window" | "leaky_bucket";
  count: number;
  periodSeconds: 1 | 60 | 3600;
  /** Token and leaky bucket: the bucket's size in packets (windows: the count). */
  burst: number;
  /** Sources are grouped by these prefix lengths. */
  prefix4: number;
  prefix6: number;
  /** One limit per server port (else one per rule). */
  perPort: boolean;
  /** Over-limit reports: at most one per source per this. */
  reportSeconds: number;
  /** As written, e.g. "100/s". */
  text: string;
  pos: SourcePos;
}

export interface Rule extends Match {
  /** 0-based position in `rules`. */
  index: number;
  name: string;
  action: Action;
  /** The rule's own mode if it sets one, else the policy's. */
  mode: Mode;
  /** Whether the rule sets `mode` itself. */
  ownMode: boolean;
  /** Report allowed matches too (blocks and detections are always reported). */
  log: boolean;
  /** Allow rules: the packets each source sends on the connections it allows, limited. */
  rateLimit?: RateLimit;
  /** The local decision this rule stands for (rules named `decision:<id>`). */
  decision?: LocalDecision;
  /**
   * A connection this rule matches (as reported) puts its local address into the dynamic set
   * `set` for `seconds`: rules naming that set give the host a stricter policy for a while.
   */
  quarantine?: { set: string; seconds: number };
  /** Position of the rule (its first key). */
  pos: SourcePos;
}

/**
 * Where a set's entries come from when not the policy itself: a feed (`url:`, or `file:` with
 * feed fields) or a dynamic set (`dynamic: true`, changed at run time through the daemon).
 */
export interface SetOrigin {
  kind: "feed" | "dynamic";
  /** Feeds: the URL fetched (absent for a file feed). */
  url?: string;
  /** Feeds: how often the daemon fetches the URL, seconds. */
  intervalSeconds?: number;
  /** Feeds: the largest body fetched, bytes. */
  maxBytes?: number;
  format?: "plain" | "csv" | "stix";
  column?: number;
  category?: string;
  confidence?: number;
  /** Dynamic sets: an entry's lifetime when `moat set add` names none (absent: no expiry). */
  timeoutSeconds?: number;
  /** Dynamic sets: entries held at most. */
  maxEntries?: number;
  /** Dynamic sets filled by CrowdSec's local API (a bouncer). */
  crowdsec?: { url: string; keyFile: string; intervalSeconds: number };
  /** Entries of the source that were not taken (not an address, refused STIX patterns...). */
  refused?: number;
}

export interface AddressSet {
  name: string;
  kind: "address";
  entries: AddressEntry[];
  file?: string;
  origin?: SetOrigin;
  pos: SourcePos;
}

export interface PortSet {
  name: string;
  kind: "port";
  entries: PortRange[];
  file?: string;
  origin?: SetOrigin;
  pos: SourcePos;
}

/** A set with no entries (e.g. an empty blocklist file): usable where either kind is expected. */
export interface EmptySet {
  name: string;
  kind: "empty";
  entries: [];
  file?: string;
  origin?: SetOrigin;
  pos: SourcePos;
}

export type PolicySet = AddressSet | PortSet | EmptySet;

export interface Redirect extends Match {
  name: string;
  to: { ip: string; family: Family; port: number };
  proxyProtocol?: "v1" | "v2";
  /** What happens when the target does not listen (failure.helper when not said). */
  onUnavailable?: "block" | "allow";
  pos: SourcePos;
}

/** The failure section: what moat does when something it relies on fails. */
export interface Failure {
  /** The daemon stops or dies: its programs keep judging, or let everything through. */
  daemon: DaemonFailure;
  /** A redirect's target does not listen: block the connection or let it go where it was going. */
  helper: "block" | "allow";
  /** Events lost in the kernel: counted and logged, or also a notice through every sink. */
  eventsLost: EventsLostChoice;
  pos?: SourcePos;
}

/** One attach.interfaces entry: a name or glob and the hook that judges incoming packets. */
/** The `dns` section: how names are learned (docs/policy.md, "Names"). */
export interface DnsSettings {
  /** Trusted resolvers named in the policy (normalised IP text), besides /etc/resolv.conf's. */
  resolvers: string[];
  /** A binding lives max(answer TTL, this) + graceSeconds. Default 5. */
  minTtlSeconds: number;
  /** Default 30. */
  graceSeconds: number;
  /**
   * "block": the canary use-application-dns.net gets NXDOMAIN, and connections to
   * set:doh-resolvers on tcp/udp 443 and 853 are blocked by the implicit rule `dns:doh` before
   * the policy's rules; in detect mode both are only reported (docs/dns.md, "Encrypted DNS").
   * Default "allow".
   */
  doh: "allow" | "block";
  /** "strip": the proxy removes the `ech` parameter from HTTPS/SVCB answers. Default "keep". */
  ech: "strip" | "keep";
  /** dns.doh_list as resolved (the file the built-in set:doh-resolvers was read from instead). */
  dohList?: string;
  /** Where the section is written; absent when the policy has none (the defaults apply). */
  pos?: SourcePos;
}

export interface InterfaceHooks {
  name: string;
  /** auto: tc ingress on veth and virtio_net interfaces, XDP on the others */
  ingress: "auto" | "xdp" | "tc";
}

export interface Located<T> {
  value: T;
  pos: SourcePos;
}

export interface PolicyModel {
  /** The policy file as named by the caller. */
  file: string;
  version: 1;
  mode: Mode;
  defaults: { ingress: Action; egress: Action; pos?: SourcePos };
  attach: {
    /** The patterns of attach.interfaces, in order. */
    interfaces: Located<string[]>;
    /** The same entries with the hook each gives incoming packets (xdp when not said). */
    hooks: InterfaceHooks[];
    cgroup?: Located<string>;
  };
  sets: Map<string, PolicySet>;
  rules: Rule[];
  redirects: Redirect[];
  failure: Failure;
  /** Always present: the defaults when the policy has no `dns` section. */
  dns: DnsSettings;
  /** The `anomaly` section with its defaults; absent when the policy has none (defaults). */
  anomaly?: AnomalyModel;
  /**
   * `scrub`: TCP SYN and SYN-ACK MSS options above mss4 / mss6 are lowered; TTL / hop limit
   * below minTtl raised; IPv4's DF cleared; the id of IPv4 packets leaving randomised (absent:
   * untouched).
   */
  scrub?: {
    mss4?: number;
    mss6?: number;
    minTtl?: number;
    clearDf?: boolean;
    randomIpId?: boolean;
    pos: SourcePos;
  };
  /** `flood.syn`: the SYN flood defence (absent: none). */
  synFlood?: SynFlood;
  /** `flood.udp_amplification`: the limit of UDP from amplification ports (absent: none). */
  udpAmplification?: UdpAmplification;
  /** `flood.icmp`: ICMP longer than maxSize bytes is dropped or reported (absent: none). */
  icmpFlood?: { maxSize: number; mode: Mode; pos: SourcePos };
  /** `ids`: signatures matched on the first bytes of flows (absent: none, nothing copied). */
  ids?: IdsModel;
  /**
   * `review.silent_block`: in prevent mode, unknown connections the defaults block go to the
   * review queue too (detect mode always queues them). Absent: false.
   */
  review?: { silentBlock: boolean; pos: SourcePos };
  logging: {
    audit?: Located<{ path: string }>;
    history?: Located<{
      path?: string;
      maxAgeSeconds?: number;
      maxBytes?: number;
      /** Flow records' window (logging.history.flow_interval). */
      flowIntervalSeconds?: number;
    }>;
  };
  otel?: Located<{ endpoint: string }>;
  eventPublisher?: Located<{
    webhooks: { url: string; types?: string[]; secretFile?: string }[];
    nats?: { url: string; subject: string };
  }>;
  api?: Located<{ listen: string; tokenFile?: string; tls?: { cert: string; key: string } }>;
  /** `fleet`: events to a JetStream stream, policy from a key-value bucket (docs/fleet.md). */
  fleet?: Located<FleetSettings>;
  /** Set files read (absolute or relative to the working directory), for reload-on-change. */
  setFiles: string[];
  /**
   * moat's local decisions (not from the file): judged in one layer before the file's rules
   * (src/policy/decision-rules.ts). Absent: none.
   */
  decisions?: LocalDecision[];
}

export interface FleetSettings {
  url: string;
  /** This host's name in subjects and keys (absent: the machine's host name). */
  host?: string;
  nkeySeedFile?: string;
  /** Events are published to `${subject}.${host}`. */
  events?: { subject: string };
  /** signers: the public nkeys a revision must be signed by (absent: unsigned revisions apply). */
  policy?: {
    bucket: string;
    stateFile: string;
    signers?: string[];
    /** An applied revision whose report is not written in this long is reverted (default 60). */
    reportWithinSeconds?: number;
  };
}

/** `flood.udp_amplification` (docs/policy.md, "flood"): a rate limit per source and source port. */
export interface UdpAmplification {
  ports: number[];
  limit: RateLimit;
  mode: Mode;
  pos: SourcePos;
}

/** `flood.syn` (docs/policy.md, "flood"): when a port is under a SYN flood, and what moat does. */
export interface SynFlood {
  /** The ports defended, each with its own bucket; empty: every port, sharing one. */
  ports: number[];
  /** SYNs per second to one port above which it is under attack. */
  rate: number;
  /** SYNs over the rate taken at once before the attack starts. */
  burst: number;
  /** Seconds without a SYN over the rate before an attack ends. */
  holdSeconds: number;
  /** prevent: moat's SYN cookies under attack; detect: reported only. */
  mode: Mode;
  pos: SourcePos;
}

/** `ids` (docs/policy.md, "ids"): the signatures moat accepted, and how flows are read. */
export interface IdsModel {
  /** detect (default): matches are reported; prevent: drop/reject signatures cut too. */
  mode: Mode;
  /** Bytes of each direction of a flow matched. */
  bytes: number;
  /** 1 in this many flows is read. */
  sample: number;
  signatures: IdsRule[];
  /** Signatures skipped for keywords outside moat's subset (each reported as a warning). */
  refused: number;
  /** Files of signatures read, for reload-on-change. */
  files: string[];
  pos: SourcePos;
}

/** One accepted signature, with its text and where it was written. */
export interface IdsRule extends IdsSignature {
  text: string;
  pos: SourcePos;
}
