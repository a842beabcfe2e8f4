// Codecs for every struct in bpf/include/moat_abi.h, and its enums.
import { defineStruct } from "./struct.ts";

/** Counters (enum moat_counter_index): entries of the per-CPU `counters` map's value. */
export const Counter = {
  pass: 0,
  drop: 1,
  nonIp: 2,
  malformed: 3,
  eventLost: 4,
  noPolicy: 5,
  new: 6,
  established: 7,
  allowed: 8,
  blocked: 9,
  detected: 10,
  ctCreated: 11,
  ctFull: 12,
  ctExpired: 13,
  rejudged: 14,
  fragment: 15,
  fragmentOrphan: 16,
  related: 17,
  cut: 18,
  reset: 19,
  closed: 20,
  tableMiss: 21,
  redirected: 22,
  postRouteMiss: 23,
  deferred: 24,
  unowned: 25,
  daemonGone: 26,
  unavailable: 27,
  basics: 28,
  namesFull: 29,
  spliced: 30,
  splicedConnections: 31,
  limitDropped: 32,
  limitDetected: 33,
  limitFull: 34,
  tcpFlagsDropped: 35,
  tcpFlagsDetected: 36,
  mssClamped: 37,
  ttlRaised: 38,
  dfCleared: 39,
  ipIdRandomised: 40,
  idsCopied: 41,
  idsLost: 42,
  max: 43,
} as const;

export type CounterName = Exclude<keyof typeof Counter, "max">;

export const EventType = { allowed: 1, blocked: 2, detected: 3, closed: 4, flow: 5 } as const;
export const Hook = {
  xdpIngress: 1,
  tcEgress: 2,
  connect: 3,
  sendmsg: 4,
  postRoute: 5,
  accept: 6,
  tcIngress: 7,
} as const;
export const Direction = { ingress: 0, egress: 1 } as const;
export const Action = { allow: 1, block: 2 } as const;
export const Mode = { detect: 1, prevent: 2 } as const;
/** enum moat_unavailable: what a redirect does when its target does not listen (bit 0). */
export const Unavailable = { block: 0, allow: 1 } as const;
/**
 * enum moat_redirect_flag, in the same byte: quiet = the kernel does not report the redirect;
 * layer7 = taken only when the rule chosen at connect() has MOAT_RULE_LAYER7 (moat's L7 relay); netns = a loopback target served in every network namespace (the DNS
 * proxy).
 */
export const RedirectFlag = { quiet: 0x80, layer7: 0x40, netns: 0x20 } as const;
/** enum moat_rule_flag: moat_rule.flags. */
export const RuleFlag = { layer7: 0x01, limited: 0x02 } as const;
export const Reason = {
  new: 1,
  rejudged: 2,
  untracked: 3,
  fin: 4,
  rst: 5,
  maxDuration: 6,
  redirected: 7,
  unavailable: 8,
  rateLimit: 9,
  tcpFlags: 10,
  udpAmplification: 11,
  icmpSize: 12,
} as const;
export const TcpState = {
  none: 0,
  synSent: 1,
  synRecv: 2,
  established: 3,
  finWait: 4,
  timeWait: 5,
  closed: 6,
} as const;
export const CtFlag = {
  finInit: 0x01,
  finResp: 0x02,
  reported: 0x04,
  closeSent: 0x08,
  replied: 0x10,
  midstream: 0x20,
  cut: 0x40,
  await: 0x80,
  pending: 0x100,
  relayed: 0x200,
  limited: 0x400,
  idsDone: 0x800,
  blockedFirst: 0x1000,
  localUnseen: 0x2000,
  overdue: 0x4000,
  idsCut: 0x8000,
  postRoute: 0x10000,
} as const;

/** enum moat_limit_algorithm (bpf/include/ratelimit.h). */
export const LimitAlgorithm = {
  tokenBucket: 1,
  fixedWindow: 2,
  slidingWindow: 3,
  leakyBucket: 4,
} as const;
/** enum moat_limit_key_flag. */
export const LimitKeyFlag = { overflow: 0x01 } as const;

/** enum moat_scrub_flag. */
export const ScrubFlag = { clearDf: 0x01, randomIpId: 0x02 } as const;

export const RULE_NONE = 0xffffffff;

export const lpm6Key = defineStruct("moat_lpm6_key", 20, {
  prefixlen: { offset: 0, type: "u32" },
  addr: { offset: 4, bytes: 16 },
});

export const ryKey = defineStruct("moat_ry_key", 8, {
  r: { offset: 0, type: "u32" },
  y: { offset: 4, type: "u32" },
});

export const rule = defineStruct("moat_rule", 8, {
  action: { offset: 0, type: "u8" },
  mode: { offset: 1, type: "u8" },
  log: { offset: 2, type: "u8" },
  flags: { offset: 3, type: "u8" },
  max_duration_s: { offset: 4, type: "u32" },
});

/**
 * Table images per slot (MOAT_IMAGES): the packet hooks', the socket hooks', the redirects', the
 * rules naming hosts'.
 */
export const IMAGES = 4;

/** Entries of each slot's name bindings map (MOAT_NAME_BINDINGS). */
export const NAME_BINDINGS = 262144;

/** Entries of the names journal (MOAT_NAME_JOURNAL), and the bytes of a name in its key. */
export const NAME_JOURNAL = 524288;
export const NAME_LEN = 256;

/** One table image's class counts (struct moat_image_meta), by image in moat_meta.image. */
export const imageMeta = defineStruct("moat_image_meta", 8, {
  ns: { offset: 0, type: "u32" },
  nx: { offset: 4, type: "u32" },
});

export const meta = defineStruct("moat_meta", 100, {
  generation: { offset: 0, type: "u32" },
  rule_count: { offset: 4, type: "u32" },
  default_rule: { offset: 8, bytes: 8 },
  stats_rows: { offset: 16, type: "u32" },
  redirect_count: { offset: 20, type: "u32" },
  image: { offset: 24, bytes: IMAGES * imageMeta.size },
  first_local_rule: { offset: 56, type: "u32" },
  first_ingress_process_rule: { offset: 60, type: "u32" },
  first_ingress_sport_rule: { offset: 64, type: "u32" },
  proc_nn: { offset: 68, type: "u32" },
  proc_nu: { offset: 72, type: "u32" },
  proc_nc: { offset: 76, type: "u32" },
  proc_ni: { offset: 80, type: "u32" },
  basics_judged: { offset: 84, type: "u16" },
  drop_malformed: { offset: 86, bytes: 2 },
  stats_atomic: { offset: 88, type: "u8" },
  daemon_allow: { offset: 89, type: "u8" },
  socket_image: { offset: 90, type: "u8" },
  post_route: { offset: 91, type: "u8" },
  accept: { offset: 92, type: "u8" },
  names: { offset: 93, type: "u8" },
  layer7: { offset: 94, type: "u8" },
  lean: { offset: 95, type: "u8" },
  ids: { offset: 96, type: "u8" },
  proc_folds: { offset: 97, type: "u8" },
  default_prevent: { offset: 98, type: "u8" },
  stacked: { offset: 99, type: "u8" },
});

/** moat_meta.lean (enum moat_lean): what the socket hooks may leave out under a policy. */
export const LEAN_RECORD = 0x01;
export const LEAN_NO_EXE = 0x02;

export const state = defineStruct("moat_state", 8 + 2 * meta.size, {
  active: { offset: 0, type: "u32" },
  meta: { offset: 8, bytes: 2 * meta.size },
});

/** Who owns a local socket, as the socket hooks see it (pid 0: not known). */
export const owner = defineStruct("moat_owner", 48, {
  cgroup_id: { offset: 0, type: "u64" },
  exe_ino: { offset: 8, type: "u64" },
  exe_dev: { offset: 16, type: "u32" },
  pid: { offset: 20, type: "u32" },
  uid: { offset: 24, type: "u32" },
  exe_gen: { offset: 28, type: "u32" },
  comm: { offset: 32, bytes: 16 },
});

/** A name binding's key (tbl_names): the identity (all zero: everyone) and the address. */
export const nameKey = defineStruct("moat_name_key", 40, {
  cgroup_id: { offset: 0, type: "u64" },
  exe_ino: { offset: 8, type: "u64" },
  exe_dev: { offset: 16, type: "u32" },
  uid: { offset: 20, type: "u32" },
  addr: { offset: 24, bytes: 16 },
});

export const nameBinding = defineStruct("moat_name_binding", 16, {
  nclass: { offset: 0, type: "u32" },
  expires_ns: { offset: 8, type: "u64" },
});

/** The DNS proxy's ports in one network namespace (netns_targets, by the namespace's cookie). */
export const netnsPorts = defineStruct("moat_netns_ports", 4, {
  udp: { offset: 0, type: "u16" },
  tcp: { offset: 2, type: "u16" },
});

/** A names journal key (name_journal): one name of one binding; the value is its expiry (u64). */
export const nameJournalKey = defineStruct("moat_name_journal_key", 296, {
  binding: { offset: 0, bytes: 40 },
  name: { offset: 40, bytes: 256 },
});

/** A spliced socket's peer and the bytes sent on to it (splice_peers; the addon writes it). */
export const splicePeer = defineStruct("moat_splice_peer", 16, {
  peer: { offset: 0, type: "u64" },
  bytes: { offset: 8, type: "u64" },
});

/** An executable by inode, device and generation (0: not known, bpf/include/exe_file.h). */
export const exeKey = defineStruct("moat_exe_key", 16, {
  ino: { offset: 0, type: "u64" },
  dev: { offset: 8, type: "u32" },
  gen: { offset: 12, type: "u32" },
});

/** A frame's interface and MAC address: the macvlan on that interface it belongs to. */
export const stackedKey = defineStruct("moat_stacked_key", 12, {
  ifindex: { offset: 0, type: "u32" },
  mac: { offset: 4, bytes: 6 },
});

export const sock = defineStruct("moat_sock", 104, {
  owner: { offset: 0, bytes: 48 },
  rule: { offset: 48, type: "u32" },
  generation: { offset: 52, type: "u32" },
  verdict: { offset: 56, type: "u8" },
  protocol: { offset: 57, type: "u8" },
  port: { offset: 58, type: "u16" },
  redirect: { offset: 60, type: "u32" },
  ifindex: { offset: 64, type: "u32" },
  post_route: { offset: 68, type: "u8" },
  quic: { offset: 69, type: "u8" },
  target_port: { offset: 70, type: "u16" },
  addr: { offset: 72, bytes: 16 },
  target: { offset: 88, bytes: 16 },
});

/** moat_sock.post_route (the post-route check, bpf/include/post_route.h). */
export const PostRoute = {
  pending: 0x01,
  blocked: 0x02,
  reported: 0x04,
  relayed: 0x08,
  checked: 0x10,
  judged: 0x20,
} as const;

export const limit = defineStruct("moat_limit", 56, {
  id: { offset: 0, type: "u32" },
  count: { offset: 4, type: "u32" },
  period_ns: { offset: 8, type: "u64" },
  fill_ns: { offset: 16, type: "u64" },
  report_ns: { offset: 24, type: "u64" },
  burst: { offset: 32, type: "u32" },
  algorithm: { offset: 36, type: "u8" },
  prefix4: { offset: 37, type: "u8" },
  prefix6: { offset: 38, type: "u8" },
  per_port: { offset: 39, type: "u8" },
  lease: { offset: 40, type: "u32" },
  pad: { offset: 44, type: "u32" },
  lease_ns: { offset: 48, type: "u64" },
});

export const limitLease = defineStruct("moat_limit_lease", 40, {
  credit: { offset: 0, type: "u64" },
  until: { offset: 8, type: "u64" },
  denied_until: { offset: 16, type: "u64" },
  report_after: { offset: 24, type: "u64" },
  over: { offset: 32, type: "u64" },
});

export const limitKey = defineStruct("moat_limit_key", 24, {
  id: { offset: 0, type: "u32" },
  port: { offset: 4, type: "u16" },
  flags: { offset: 6, type: "u8" },
  pad: { offset: 7, type: "u8" },
  addr: { offset: 8, bytes: 16 },
});

export const limitState = defineStruct("moat_limit_state", 56, {
  lock: { offset: 0, type: "u32" },
  pad: { offset: 4, type: "u32" },
  a: { offset: 8, type: "u64" },
  b: { offset: 16, type: "u64" },
  t: { offset: 24, type: "u64" },
  last_ns: { offset: 32, type: "u64" },
  reported_ns: { offset: 40, type: "u64" },
  over: { offset: 48, type: "u64" },
});

export const floodPort = defineStruct("moat_flood_port", 24, {
  period_ns: { offset: 0, type: "u64" },
  hold_ns: { offset: 8, type: "u64" },
  syn_burst: { offset: 16, type: "u32" },
  mode: { offset: 20, type: "u8" },
});

export const floodUdp = defineStruct("moat_flood_udp", 64, {
  limit: { offset: 0, bytes: 56 },
  mode: { offset: 56, type: "u8" },
});

export const floodState = defineStruct("moat_flood_state", 56, {
  lock: { offset: 0, type: "u32" },
  pad: { offset: 4, type: "u32" },
  credit: { offset: 8, type: "u64" },
  t: { offset: 16, type: "u64" },
  since_ns: { offset: 24, type: "u64" },
  until_ns: { offset: 32, type: "u64" },
  over: { offset: 40, type: "u64" },
  syns: { offset: 48, type: "u64" },
});

/** flood_counters' indexes (enum moat_flood_counter in bpf/include/moat_abi.h). */
export const FloodCounter = {
  syn: 0,
  synOver: 1,
  cookieSent: 2,
  cookieDetected: 3,
  cookieValid: 4,
  cookieInvalid: 5,
  assigned: 6,
  assignFailed: 7,
  cookieUnsent: 8,
  udpDropped: 9,
  udpDetected: 10,
  udpFull: 11,
  icmpDropped: 12,
  icmpDetected: 13,
  cookieEgress: 14,
  max: 15,
} as const;
export type FloodCounterName = Exclude<keyof typeof FloodCounter, "max">;

/** flood_on's bits: the defences the live policy has (enum moat_flood_on). */
export const FloodOn = {
  syn: 1,
  udp: 2,
} as const;

export const floodIcmp = defineStruct("moat_flood_icmp", 8, {
  max_size: { offset: 0, type: "u32" },
  mode: { offset: 4, type: "u8" },
});

export const floodSecret = defineStruct("moat_flood_secret", 16, {
  k: { offset: 0, bytes: 16 },
});

export const scrub = defineStruct("moat_scrub", 8, {
  mss4: { offset: 0, type: "u16" },
  mss6: { offset: 2, type: "u16" },
  min_ttl: { offset: 4, type: "u8" },
  flags: { offset: 5, type: "u8" },
  pad: { offset: 6, type: "u16" },
});

export const counter = defineStruct("moat_counter", 16, {
  packets: { offset: 0, type: "u64" },
  bytes: { offset: 8, type: "u64" },
});

/** The counters map's one per-CPU value: Counter.max moat_counter entries. */
export const counters = defineStruct("moat_counters", 16 * Counter.max, {
  c: { offset: 0, bytes: 16 * Counter.max },
});

export const ruleStats = defineStruct("moat_rule_stats", 24, {
  packets: { offset: 0, type: "u64" },
  bytes: { offset: 8, type: "u64" },
  connections: { offset: 16, type: "u64" },
});

export const ctKey = defineStruct("moat_ct_key", 40, {
  addr0: { offset: 0, bytes: 16 },
  addr1: { offset: 16, bytes: 16 },
  port0: { offset: 32, type: "u16" },
  port1: { offset: 34, type: "u16" },
  family: { offset: 36, type: "u8" },
  protocol: { offset: 37, type: "u8" },
});

export const ct = defineStruct("moat_ct", 176, {
  id: { offset: 0, type: "u64" },
  created_ns: { offset: 8, type: "u64" },
  last_ns: { offset: 16, type: "u64" },
  deadline_ns: { offset: 24, type: "u64" },
  packets: { offset: 32, bytes: 16 },
  bytes: { offset: 48, bytes: 16 },
  rule: { offset: 64, type: "u32" },
  generation: { offset: 68, type: "u32" },
  ifindex: { offset: 72, type: "u32" },
  flags: { offset: 76, type: "u32" },
  initiator: { offset: 80, type: "u8" },
  direction: { offset: 81, type: "u8" },
  verdict: { offset: 82, type: "u8" },
  mode: { offset: 83, type: "u8" },
  tcp_state: { offset: 84, type: "u8" },
  icmp_type: { offset: 85, type: "u8" },
  icmp_code: { offset: 86, type: "u8" },
  limit_credit: { offset: 87, type: "u8" },
  limit_until: { offset: 88, type: "u64" },
  seq_end: { offset: 96, bytes: 8 },
  owner: { offset: 104, bytes: 48 },
  ids: { offset: 152, bytes: 24 },
});

export const fragKey = defineStruct("moat_frag_key", 40, {
  src: { offset: 0, bytes: 16 },
  dst: { offset: 16, bytes: 16 },
  id: { offset: 32, type: "u32" },
  family: { offset: 36, type: "u8" },
  protocol: { offset: 37, type: "u8" },
});

export const frag = defineStruct("moat_frag", 16, {
  ts_ns: { offset: 0, type: "u64" },
  generation: { offset: 8, type: "u32" },
});

export const event = defineStruct("moat_event", 152, {
  ts_ns: { offset: 0, type: "u64" },
  conn_id: { offset: 8, type: "u64" },
  packets: { offset: 16, type: "u64" },
  bytes: { offset: 24, type: "u64" },
  duration_ns: { offset: 32, type: "u64" },
  local: { offset: 40, bytes: 16 },
  remote: { offset: 56, bytes: 16 },
  local_port: { offset: 72, type: "u16" },
  remote_port: { offset: 74, type: "u16" },
  ifindex: { offset: 76, type: "u32" },
  rule: { offset: 80, type: "u32" },
  generation: { offset: 84, type: "u32" },
  type: { offset: 88, type: "u8" },
  hook: { offset: 89, type: "u8" },
  family: { offset: 90, type: "u8" },
  protocol: { offset: 91, type: "u8" },
  direction: { offset: 92, type: "u8" },
  mode: { offset: 93, type: "u8" },
  verdict: { offset: 94, type: "u8" },
  reason: { offset: 95, type: "u8" },
  icmp_type: { offset: 96, type: "u8" },
  icmp_code: { offset: 97, type: "u8" },
  tcp_state: { offset: 98, type: "u8" },
  redirect: { offset: 100, type: "u32" },
  owner: { offset: 104, bytes: 48 },
});

/** The first datagrams of a udp 443 flow, copied for its QUIC ClientHello (bpf/include/quic.h). */
export const quicInitial = defineStruct("moat_quic_initial", 1616, {
  ts_ns: { offset: 0, type: "u64" },
  cookie: { offset: 8, type: "u64" },
  local: { offset: 16, bytes: 16 },
  remote: { offset: 32, bytes: 16 },
  local_port: { offset: 48, type: "u16" },
  remote_port: { offset: 50, type: "u16" },
  rule: { offset: 52, type: "u32" },
  generation: { offset: 56, type: "u32" },
  len: { offset: 60, type: "u16" },
  family: { offset: 62, type: "u8" },
  verdict: { offset: 63, type: "u8" },
  owner: { offset: 64, bytes: 48 },
  data: { offset: 112, bytes: 1500 },
});

/** IDS signatures' settings of one slot (ids_config; bpf/include/ids.h). */
export const ids = defineStruct("moat_ids", 16, {
  bytes: { offset: 0, type: "u16" },
  pad: { offset: 2, type: "u16" },
  sample: { offset: 4, type: "u32" },
  since_ns: { offset: 8, type: "u64" },
});

export const idsFlow = defineStruct("moat_ids_flow", 24, {
  next_seq: { offset: 0, bytes: 8 },
  copied: { offset: 8, bytes: 4 },
  packets: { offset: 12, bytes: 2 },
  state: { offset: 14, bytes: 2 },
  again: { offset: 16, type: "u64" },
});

/**
 * enum moat_ids_const: a record is the header and up to maxBytes bytes; a TCP direction's bytes
 * come in at most maxPackets copies and maxOverlaps more over bytes already copied; first, lost,
 * urgent: the record's flags.
 */
export const IdsConst = {
  maxBytes: 1024,
  maxPackets: 8,
  header: 128,
  maxOverlaps: 8,
  first: 0x01,
  lost: 0x02,
  urgent: 0x04,
} as const;

export const idsRecord = defineStruct("moat_ids_record", 1152, {
  ts_ns: { offset: 0, type: "u64" },
  conn_id: { offset: 8, type: "u64" },
  local: { offset: 16, bytes: 16 },
  remote: { offset: 32, bytes: 16 },
  local_port: { offset: 48, type: "u16" },
  remote_port: { offset: 50, type: "u16" },
  rule: { offset: 52, type: "u32" },
  generation: { offset: 56, type: "u32" },
  ifindex: { offset: 60, type: "u32" },
  offset: { offset: 64, type: "u16" },
  len: { offset: 66, type: "u16" },
  family: { offset: 68, type: "u8" },
  protocol: { offset: 69, type: "u8" },
  direction: { offset: 70, type: "u8" },
  to_server: { offset: 71, type: "u8" },
  hook: { offset: 72, type: "u8" },
  verdict: { offset: 73, type: "u8" },
  urgent: { offset: 74, type: "u16" },
  flags: { offset: 76, type: "u8" },
  pad: { offset: 77, bytes: 3 },
  owner: { offset: 80, bytes: 48 },
  data: { offset: 128, bytes: 1024 },
});

export const redirect = defineStruct("moat_redirect", 20, {
  addr: { offset: 0, bytes: 16 },
  port: { offset: 16, type: "u16" },
  family: { offset: 18, type: "u8" },
  unavailable: { offset: 19, type: "u8" },
});

export const endpoint = defineStruct("moat_endpoint", 20, {
  addr: { offset: 0, bytes: 16 },
  port: { offset: 16, type: "u16" },
  protocol: { offset: 18, type: "u8" },
});

/** A redirected client as its proxy sees it (the originals' key): netns 0 is moat's namespace. */
export const client = defineStruct("moat_client", 32, {
  addr: { offset: 0, bytes: 16 },
  port: { offset: 16, type: "u16" },
  protocol: { offset: 18, type: "u8" },
  netns: { offset: 24, type: "u64" },
});

export const original = defineStruct("moat_original", 96, {
  addr: { offset: 0, bytes: 16 },
  port: { offset: 16, type: "u16" },
  family: { offset: 18, type: "u8" },
  protocol: { offset: 19, type: "u8" },
  redirect: { offset: 20, type: "u32" },
  generation: { offset: 24, type: "u32" },
  target: { offset: 28, bytes: 20 },
  owner: { offset: 48, bytes: 48 },
});

/** Every codec, for the BTF layout check (test/unit/abi.test.ts). */
export const codecs = [
  lpm6Key,
  ryKey,
  rule,
  imageMeta,
  meta,
  state,
  owner,
  exeKey,
  stackedKey,
  nameKey,
  nameBinding,
  netnsPorts,
  nameJournalKey,
  sock,
  counter,
  counters,
  ruleStats,
  ctKey,
  ct,
  fragKey,
  frag,
  event,
  quicInitial,
  redirect,
  endpoint,
  client,
  original,
  splicePeer,
  limit,
  limitKey,
  limitState,
  limitLease,
  scrub,
  floodPort,
  floodState,
  floodUdp,
  floodSecret,
  floodIcmp,
  ids,
  idsFlow,
  idsRecord,
];
