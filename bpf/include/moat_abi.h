/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every struct and enum shared between moat's BPF programs and user space.
 * Fixed-width types, explicit padding, sizes asserted; user space codecs are
 * checked against the BTF of the built objects (test/unit/abi.test.ts).
 * Addresses are 16 bytes everywhere: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d),
 * network order. Ports are host order. */
#ifndef MOAT_ABI_H
#define MOAT_ABI_H

#define MOAT_ABI_VERSION 2

/* The constants user space copies (src/policy/compile, src/datapath): an enum, so that they are
 * in the object's BTF and test/unit/abi.test.ts checks every copy against it. */
enum moat_abi_const {
	/* a connection takes credit from its source's lease once it has sent this many packets,
	 * this many at most (ratelimit.h; policy/rate-limit.ts LIMIT_CONNECTION_CHUNK) */
	MOAT_LIMIT_CT_CHUNK = 32,
	/* "no rule" in the rule-valued tables (compile/image.ts RULE_NONE) */
	MOAT_RULE_NONE = 0xffffffffu,
	/* protocol slots of the port-class table: tcp, udp, icmp, icmpv6, other */
	MOAT_PROTO_SLOTS = 5,
	MOAT_PORT_CLASS_SIZE = 2 * MOAT_PROTO_SLOTS * 65536,
	MOAT_SPORT_CLASS_SIZE = 65537,
	/* less an interface class: the process class every process rule of that interface class
	 * matches (none computed is it): XDP asks the socket hooks' tables whether a process rule
	 * may decide an incoming connection (accept.h) */
	MOAT_ANY_PROCESS = 65535,
	/* IPv4 address directory entries (u64): a /16's entry is its class with UNIFORM set in
	 * the high word, its /24 block with BITMAP set (low: the block's index), or its segment
	 * (high: entry count, low: first index); a segment entry is (high: first address, low 16
	 * bits; low: class). A block is 6 entries: a 256-bit map of the special /24s, (low: the
	 * other /24s' class, high: 4 bytes of ranks), (low: the first special /24's entry); a
	 * special /24's entry is uniform or a segment. A directory whose entry 0 has WIDE in its
	 * high word has no /16 entries: the /16 t's block is at 8 * (1 + t)
	 * (src/policy/compile/dir4.ts). */
	MOAT_DIR4_TOP = 65536,
	MOAT_DIR4_UNIFORM = 0x80000000u,
	MOAT_DIR4_BITMAP = 0x40000000u,
	MOAT_DIR4_WIDE = 0x20000000u,
	MOAT_DIR4_BLOCK_HEAD = 6,
	/* Four table images per slot: 0 for the packet hooks, 1 for the socket hooks when rules
	 * name processes, 2 for the redirects, 3 for the rules naming hosts (outer_index() in
	 * maps.h) */
	MOAT_IMAGES = 4,
	/* entries of each slot's name bindings (tbl_names) */
	MOAT_NAME_BINDINGS = 262144,
	/* entries of the names journal (name_journal): one per (identity, address, name), twice
	 * the bindings of a slot (a binding has its query name and often a CNAME or two) */
	MOAT_NAME_JOURNAL = 524288,
	/* bytes of a name in the journal's key: a DNS name has at most 253 characters */
	MOAT_NAME_LEN = 256,
};
#define MOAT_DIR4_STEPS 17 /* binary search steps over a segment of <= 65536 entries */

/* The policy tables of one image, in the order of their outer map's index (outer_index() in
 * maps.h; src/datapath/policy-maps.ts POLICY_TABLES has the same order). */
enum moat_lpm_table {
	T_REMOTE = 0, /* remote address -> remote class */
	T_LOCAL = 1,  /* local address -> local class */
};

enum moat_u32_table {
	T_PORT_CLASS = 0,  /* (dir * 5 + proto slot) << 16 | port value -> port class */
	T_SPORT_CLASS = 1, /* 0, or 1 + client port -> client-port class */
	T_LX = 2,	   /* lclass * ns + sclass -> X */
	T_PX = 3,	   /* pclass * nx + X -> Y */
	T_ANY_REMOTE = 4,  /* Y -> first rule without remote constraint */
	T_REMOTE_ONLY = 5, /* rclass * 2 + dir -> first remote-only rule */
	T_PROC_A = 6,	   /* image 1: path class * nn + name class -> a */
	T_PROC_B = 7,	   /* image 1: a * nu + user class -> b */
	T_PROC_P = 8,	   /* image 1: b * nc + cgroup class -> c */
	T_PROC_D = 9,	   /* image 1: c * ni + interface class -> process class */
	T_U32_TABLES = 10,
};

/* LPM trie key for IPv6. */
struct moat_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};
_Static_assert(sizeof(struct moat_lpm6_key) == 20, "moat_lpm6_key");

/* remote_y key: (remote class, Y class). */
struct moat_ry_key {
	__u32 r;
	__u32 y;
};
_Static_assert(sizeof(struct moat_ry_key) == 8, "moat_ry_key");

enum moat_direction {
	MOAT_DIR_INGRESS = 0,
	MOAT_DIR_EGRESS = 1,
};

/* Basic networking a host needs to stay on its network (basics.h, docs/datapath.md): bit
 * numbers of moat_meta.basics_judged. ICMPv6 types 130-137 are bits 0-7 (type - 130) */
enum moat_basics {
	MOAT_BASICS_MLD_QUERY = 0,   /* icmpv6 130 */
	MOAT_BASICS_MLD_REPORT = 1,  /* icmpv6 131 */
	MOAT_BASICS_MLD_DONE = 2,    /* icmpv6 132 */
	MOAT_BASICS_RS = 3,	     /* icmpv6 133, hop limit 255: router solicitation */
	MOAT_BASICS_RA = 4,	     /* 134: router advertisement */
	MOAT_BASICS_NS = 5,	     /* 135: neighbour solicitation */
	MOAT_BASICS_NA = 6,	     /* 136: neighbour advertisement */
	MOAT_BASICS_REDIRECT = 7,    /* 137: redirect */
	MOAT_BASICS_MLD2_REPORT = 8, /* icmpv6 143 */
	MOAT_BASICS_DHCP4 = 9,	     /* udp, local port 68, remote port 67, ipv4 */
	MOAT_BASICS_DHCP6 = 10,	     /* udp, local port 546, remote port 547, ipv6 */
	MOAT_BASICS_IGMP = 11,	     /* protocol 2, ipv4 */
};

enum moat_action {
	MOAT_ACTION_ALLOW = 1,
	MOAT_ACTION_BLOCK = 2,
};

enum moat_mode {
	MOAT_MODE_DETECT = 1,
	MOAT_MODE_PREVENT = 2,
};

/* moat_rule.flags */
enum moat_rule_flag {
	/* the rule judges DNS queries by name (layer7.dns.name): at connect() its match means
	 * "moat's DNS proxy decides" (let through, redirected to the proxy, not reported);
	 * elsewhere the packet hooks' tables decide */
	MOAT_RULE_LAYER7 = 0x01,
	/* the rule has a rate limit (ratelimit.h): its entry in tbl_limits says which */
	MOAT_RULE_LIMITED = 0x02,
};

/* One rule of the rules table (policy rules in order, then default ingress, default egress). */
struct moat_rule {
	__u8 action;	      /* enum moat_action */
	__u8 mode;	      /* enum moat_mode: effective mode, the policy's folded in */
	__u8 log;	      /* report allowed connections too */
	__u8 flags;	      /* enum moat_rule_flag */
	__u32 max_duration_s; /* tcp: allowed connections' max_duration (judge.h); 0 = never */
};
_Static_assert(sizeof(struct moat_rule) == 8, "moat_rule");

/* One table image's class counts, the multipliers of its walk (docs/classifier.md). */
struct moat_image_meta {
	__u32 ns; /* client-port classes (image 1: process classes) */
	__u32 nx; /* X classes */
};
_Static_assert(sizeof(struct moat_image_meta) == 8, "moat_image_meta");

/* What the programs need to walk one generation's tables: the generation's, then each table
 * image's (by image), then the socket hooks', then the flags. */
struct moat_meta {
	__u32 generation;      /* 0 = no policy in this slot */
	__u32 rule_count;      /* policy rules, defaults excluded */
	__u32 default_rule[2]; /* by enum moat_direction */
	__u32 stats_rows;      /* rows of the rule_stats table (one per cpu, fewer if huge) */
	/* redirects (table image 2, docs/redirect.md): how many; a classified index below this
	 * is one, the defaults are not */
	__u32 redirect_count;
	/* 0: the packet hooks'; 1: the socket hooks' when rules name processes; 2: the redirects';
	 * 3: the rules naming hosts' */
	struct moat_image_meta image[MOAT_IMAGES];
	/* socket hooks: the first egress rule constraining the local address or client port,
	 * which connect() does not know yet (rule_count + 2 if none) */
	__u32 first_local_rule;
	/* the accept hook (docs/socket-hooks.md, "The accept side"): xdp passes a new ingress tcp
	 * connection undecided when the packet hooks' rule is this one or later (rule_count + 2 if
	 * no process rule judges ingress) */
	__u32 first_ingress_process_rule;
	/* the accept hook judges by table image 1 below this rule (the first ingress rule naming
	 * client ports, which image 1's process classes replace), by image 0 from it */
	__u32 first_ingress_sport_rule;
	__u32 proc_nn; /* process classes of the name, user and cgroup fields */
	__u32 proc_nu;
	__u32 proc_nc;
	__u32 proc_ni; /* interface classes */
	/* basic networking (basics.h): bit n set when a rule names class n (enum moat_basics),
	 * which is then judged like other traffic; the others pass unjudged */
	__u16 basics_judged;
	/* by direction: a prevent-mode block (a rule or the default) could decide a connection, so
	 * a frame moat cannot read is dropped */
	__u8 drop_malformed[2];
	__u8 stats_atomic; /* rows are shared by cpus: add atomically */
	__u8 daemon_allow; /* failure.daemon allow: pass all once the heartbeat is late */
	/* 1: rules name processes; the socket hooks use table image 1 and the process classes */
	__u8 socket_image;
	/* 1: rules name interfaces; the socket hooks arm the post-route check (post_route.h) */
	__u8 post_route;
	__u8 accept; /* 1: the accept hook is attached; xdp leaves ingress entries to it */
	/* 1: rules name hosts; the owner's name bindings (tbl_names) and table image 3 judge too */
	__u8 names;
	__u8 layer7; /* 1: some rule has MOAT_RULE_LAYER7 */
	/* what the socket hooks may leave out under this policy (enum moat_lean); 0: nothing */
	__u8 lean;
	/* 1: the policy has ids signatures (ids_config says how much to copy, ids.h); 0: the packet
	 * programs look at no flow's bytes */
	__u8 ids;
	/* process classes: bit s (0..2) set when the combination step s (T_PROC_A, B, P) is folded
	 * into the next one, whose table is indexed by both steps' fields (no lookup of its own);
	 * 0: every step looks up its table */
	__u8 proc_folds;
	__u8 default_prevent; /* the ingress default is in prevent mode (invalid tcp flags) */
	/* 1: tbl_proc_stacked has entries: a new connection's frame is judged by the macvlan its
	 * MAC address belongs to, not the lower interface it passed */
	__u8 stacked;
};
_Static_assert(sizeof(struct moat_meta) == 100, "moat_meta");

/* moat_meta.lean: work the socket hooks skip because no rule of the policy reads its result */
enum moat_lean {
	/* no process, name, layer7 or logged rule, no redirect: a connect()/sendmsg() allowed
	 * silently keeps no socket record (its owner is read only when it is reported,
	 * redirected, or left to the tc hook) */
	MOAT_LEAN_RECORD = 0x01,
	/* no process rule names an executable found on the host, no names, no redirect: the
	 * owner's executable inode is not read */
	MOAT_LEAN_NO_EXE = 0x02,
};

/* The one entry of the state map, read once per packet. User space writes the idle slot's
 * meta first, then flips `active` (both inner maps and meta of that slot are complete). */
struct moat_state {
	__u32 active; /* slot of the live policy: 0 or 1 */
	__u32 pad;
	struct moat_meta meta[2];
};
_Static_assert(sizeof(struct moat_state) == 208, "moat_state");

/* Packets and bytes of one counter. */
struct moat_counter {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct moat_counter) == 16, "moat_counter");

enum moat_counter_index {
	MOAT_CNT_PASS = 0,	  /* every packet passed (XDP_PASS/XDP_TX, TC_ACT_OK) */
	MOAT_CNT_DROP = 1,	  /* every packet dropped */
	MOAT_CNT_NON_IP = 2,	  /* ARP and other non-IP frames (passed) */
	MOAT_CNT_MALFORMED = 3,	  /* truncated or invalid headers (dropped in prevent) */
	MOAT_CNT_EVENT_LOST = 4,  /* ring buffer reservation failed */
	MOAT_CNT_NO_POLICY = 5,	  /* passed before the first policy */
	MOAT_CNT_NEW = 6,	  /* packets judged by the policy tables */
	MOAT_CNT_ESTABLISHED = 7, /* packets decided by a conntrack entry */
	MOAT_CNT_ALLOWED = 8,	  /* packets of allowed connections */
	MOAT_CNT_BLOCKED = 9,	  /* packets of blocked connections (dropped) */
	MOAT_CNT_DETECTED = 10,	  /* packets of detected connections (passed) */
	MOAT_CNT_CT_CREATED = 11, /* conntrack entries created (also the connection id sequence) */
	MOAT_CNT_CT_FULL = 12,	  /* conntrack insert failed: judged without caching */
	MOAT_CNT_CT_EXPIRED = 13, /* entry found but timed out: judged again */
	MOAT_CNT_REJUDGED = 14,	  /* entries judged again after a policy flip */
	MOAT_CNT_FRAGMENT = 15,	  /* non-first fragments decided by their first fragment */
	MOAT_CNT_FRAGMENT_ORPHAN = 16, /* non-first fragments judged with ports 0 */
	MOAT_CNT_RELATED = 17,	       /* icmp errors passed for an allowed connection */
	MOAT_CNT_CUT = 18,	       /* packets of connections past max_duration (dropped) */
	MOAT_CNT_RESET = 19,  /* resets sent, or probes passed, for connections past max_duration */
	MOAT_CNT_CLOSED = 20, /* tcp connections closed (fin both ways, rst) */
	MOAT_CNT_TABLE_MISS = 21, /* inconsistent tables: judged by the default rule */
	MOAT_CNT_REDIRECTED = 22, /* connect()/sendmsg() calls sent to a redirect's target */
	/* first packets that left by another interface than the route mirror predicted at
	 * connect(): judged again by the post-route check */
	MOAT_CNT_POST_ROUTE_MISS = 23,
	MOAT_CNT_DEFERRED = 24,	   /* ingress syns passed undecided to the accept hook */
	MOAT_CNT_UNOWNED = 25,	   /* accepted connections whose socket has no owner record */
	MOAT_CNT_DAEMON_GONE = 26, /* passed unjudged: failure.daemon allow, the daemon is gone */
	/* connect()/sendmsg() calls whose redirect target did not listen (failure.helper) */
	MOAT_CNT_UNAVAILABLE = 27,
	MOAT_CNT_BASICS = 28, /* basic networking (basics.h) passed unjudged */
	/* name bindings the slot's map had no room for (user space counts them: the DNS proxy's
	 * writes) */
	MOAT_CNT_NAMES_FULL = 29,
	/* bytes a spliced socket received, sent on by the kernel to its peer (splice.bpf.c) */
	MOAT_CNT_SPLICED = 30,
	/* connections handed to the kernel splice (user space counts them: the relay's splices) */
	MOAT_CNT_SPLICED_CONNECTIONS = 31,
	/* packets over a rate limit (ratelimit.h): dropped (prevent), passed and reported (detect)
	 */
	MOAT_CNT_LIMIT_DROPPED = 32,
	MOAT_CNT_LIMIT_DETECTED = 33,
	/* a source that found no room in the limit state table: judged by its limit's overflow
	 * bucket, which every such source shares */
	MOAT_CNT_LIMIT_FULL = 34,
	/* tcp packets with an invalid flag combination (scrub.h): dropped (prevent), passed
	 * (detect) */
	MOAT_CNT_TCP_FLAGS_DROPPED = 35,
	MOAT_CNT_TCP_FLAGS_DETECTED = 36,
	MOAT_CNT_MSS_CLAMPED = 37, /* tcp syn / syn-ack whose mss option was lowered (scrub.mss) */
	MOAT_CNT_TTL_RAISED = 38,  /* ttl / hop limit raised to scrub.min_ttl */
	MOAT_CNT_DF_CLEARED = 39,  /* ipv4 don't-fragment bit cleared (scrub.clear_df) */
	MOAT_CNT_IP_ID_RANDOMISED = 40, /* outgoing ipv4 id replaced (scrub.random_ip_id) */
	/* ids (ids.h): first bytes of flows copied for the daemon's signatures (bytes: payload) */
	MOAT_CNT_IDS_COPIED = 41,
	MOAT_CNT_IDS_LOST = 42, /* copies lost: the ids ring buffer was full (the packet passed) */
	MOAT_CNT_MAX = 43,
};

/* The one per-CPU value of the counters map: every counter, indexed by enum
 * moat_counter_index (one lookup per packet). */
struct moat_counters {
	struct moat_counter c[MOAT_CNT_MAX];
};
_Static_assert(sizeof(struct moat_counters) == 688, "moat_counters");

/* Counters of one rule in one generation. The rule_stats table holds stats_rows rows of
 * rule_count + 2 entries; a cpu adds to row cpu % stats_rows (atomically). */
struct moat_rule_stats {
	__u64 packets;
	__u64 bytes;
	__u64 connections; /* connections the rule judged (first packets, re-judgings) */
};
_Static_assert(sizeof(struct moat_rule_stats) == 24, "moat_rule_stats");

enum moat_event_type {
	MOAT_EV_ALLOWED = 1,
	MOAT_EV_BLOCKED = 2,
	MOAT_EV_DETECTED = 3,
	MOAT_EV_CLOSED = 4,
	/* the close of a connection whose opening was not reported (an allowed one without
	 * log): its summary for the flow records, not an event of its own */
	MOAT_EV_FLOW = 5,
};

enum moat_hook {
	MOAT_HOOK_XDP_INGRESS = 1,
	MOAT_HOOK_TC_EGRESS = 2,
	MOAT_HOOK_CONNECT = 3, /* cgroup connect4/6 */
	MOAT_HOOK_SENDMSG = 4, /* cgroup sendmsg4/6 (unconnected udp) */
	/* cgroup_skb egress: a connection's first packet, after routing (post_route.h) */
	MOAT_HOOK_POST_ROUTE = 5,
	MOAT_HOOK_ACCEPT = 6, /* cgroup_skb ingress: a local socket receives a new connection */
	/* tc ingress, on interfaces whose policy entry chose it over xdp */
	MOAT_HOOK_TC_INGRESS = 7,
};

/* Who owns a local socket, as the socket hooks see it (user space adds the path, user
 * name, cgroup path and container). pid 0: not known (no local socket, or not attached). */
struct moat_owner {
	__u64 cgroup_id; /* cgroup v2 id: the inode number of its directory */
	__u64 exe_ino;	 /* the executable's inode, device (MKDEV) and generation */
	__u32 exe_dev;
	__u32 pid; /* thread group id */
	__u32 uid;
	__u32 exe_gen;
	char comm[16];
};
_Static_assert(sizeof(struct moat_owner) == 48, "moat_owner");

/* The process rules' path key: an executable by inode, device and the inode's generation (its
 * number may be reused by another file once it is freed; the generation tells them apart) */
struct moat_exe_key {
	__u64 ino;
	__u32 dev;
	__u32 gen;
};
_Static_assert(sizeof(struct moat_exe_key) == 16, "moat_exe_key");

/* A frame's interface and MAC address (the destination of one that arrived, the source of one
 * leaving): which macvlan stacked on that interface it belongs to (tbl_proc_stacked) */
struct moat_stacked_key {
	__u32 ifindex;
	__u8 mac[6];
	__u16 pad;
};
_Static_assert(sizeof(struct moat_stacked_key) == 12, "moat_stacked_key");

/* A local socket's record (socket storage `socks`): its owner, and the socket hooks' decision
 * for its latest destination. An unconnected udp socket that sends elsewhere is judged again. */
struct moat_sock {
	struct moat_owner owner;
	__u32 rule;	  /* deciding rule, MOAT_RULE_NONE when deferred to the packet hooks */
	__u32 generation; /* policy generation that judged it (0: none yet) */
	__u8 verdict;	  /* enum moat_event_type */
	__u8 protocol;	  /* the destination's */
	__u16 port;	  /* the destination port, host order */
	__u32 redirect;	  /* redirected: the redirect's index + 1; else 0 */
	/* the post-route check (post_route.h): the interface the route mirror predicted at
	 * connect() (0: none), then the real one once checked; MOAT_POST_* flags */
	__u32 ifindex;
	__u8 post_route;
	__u8 quic;	   /* udp 443: datagrams still to copy for the daemon (quic.h) */
	__u16 target_port; /* redirected: where it was sent */
	__u8 addr[16];	   /* the destination, ipv4 mapped */
	__u8 target[16];
};
_Static_assert(sizeof(struct moat_sock) == 104, "moat_sock");

/* moat_sock.post_route */
enum moat_post_flag {
	MOAT_POST_PENDING = 0x01,  /* armed at connect(): the first packet is checked */
	MOAT_POST_BLOCKED = 0x02,  /* the real interface blocks it: every packet is dropped */
	MOAT_POST_REPORTED = 0x04, /* the check reported it: the tc hook does not again */
	/* moat's L7 relay wrote the record (its upstream, docs/l7.md): the relay's decision
	 * stands for the connection's life, a reload does not judge it again */
	MOAT_POST_RELAYED = 0x08,
	/* the first packet was checked; every later one is compared with the interface it was
	 * judged for (ifindex): SO_BINDTODEVICE or IP_PKTINFO may move a socket after it */
	MOAT_POST_CHECKED = 0x10,
	/* the check judged the socket by its real interface (its rule, verdict and generation are
	 * the check's): a reload judges it again by that interface */
	MOAT_POST_JUDGED = 0x20,
};

/* QUIC (docs/l7-quic.md): the first datagrams a socket sends to udp port 443 are copied, up to
 * MOAT_QUIC_MAX bytes each, for the daemon to read the ClientHello of their Initial packets */
#define MOAT_QUIC_PORT 443
#define MOAT_QUIC_DATAGRAMS 2
#define MOAT_QUIC_MAX 1500

/* One copied datagram, through the quic_initials ring buffer. local is this host. The socket
 * record's decision comes along, so the daemon reports it without looking it up. */
struct moat_quic_initial {
	__u64 ts_ns;	/* bpf_ktime_get_ns() */
	__u64 cookie;	/* the socket's cookie: one flow's datagrams share it */
	__u8 local[16]; /* ipv4 mapped */
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 rule; /* the socket record's rule (MOAT_RULE_NONE: left to the packet hooks) */
	__u32 generation;
	__u16 len;    /* bytes of the udp payload in data */
	__u8 family;  /* 4 or 6 */
	__u8 verdict; /* enum moat_event_type, the socket record's */
	struct moat_owner owner;
	__u8 data[MOAT_QUIC_MAX];
};
_Static_assert(sizeof(struct moat_quic_initial) == 1616, "moat_quic_initial");

/* why an event was sent */
enum moat_reason {
	MOAT_REASON_NEW = 1,	      /* first packet of a connection */
	MOAT_REASON_REJUDGED = 2,     /* a new policy changed the connection's verdict */
	MOAT_REASON_UNTRACKED = 3,    /* judged, but the conntrack table was full */
	MOAT_REASON_FIN = 4,	      /* closed: fin both ways */
	MOAT_REASON_RST = 5,	      /* closed: reset */
	MOAT_REASON_MAX_DURATION = 6, /* past the rule's max_duration: cut (closed), or detected */
	MOAT_REASON_REDIRECTED = 7,   /* connect()/sendmsg() sent to a redirect's target */
	MOAT_REASON_UNAVAILABLE = 8,  /* a redirect's target did not listen (failure.helper) */
	/* packets over a rule's rate limit; moat_event.packets counts them since the source's
	 * previous report */
	MOAT_REASON_RATE_LIMIT = 9,
	/* tcp packets with an invalid flag combination; moat_event.packets counts them since this
	 * cpu's previous report */
	MOAT_REASON_TCP_FLAGS = 10,
	/* udp from an amplification port over its per-source limit (docs/policy.md, "flood") */
	MOAT_REASON_UDP_AMPLIFICATION = 11,
	/* icmp packets larger than flood.icmp.max_size (docs/policy.md, "flood") */
	MOAT_REASON_ICMP_SIZE = 12,
};

/* tcp connection states */
enum moat_tcp_state {
	MOAT_TCP_NONE = 0, /* not tcp */
	MOAT_TCP_SYN_SENT = 1,
	MOAT_TCP_SYN_RECV = 2,
	MOAT_TCP_ESTABLISHED = 3,
	MOAT_TCP_FIN_WAIT = 4,	/* one side sent fin */
	MOAT_TCP_TIME_WAIT = 5, /* both sides sent fin */
	MOAT_TCP_CLOSED = 6,	/* reset, or cut by max_duration */
};

/* conntrack key: the 5-tuple normalized so both directions find the entry. Side 0 is the
 * lower (address, port) in an arbitrary but fixed order, side 1 the higher. ICMP echo: port = echo
 * id on both sides; other ICMP: port = type << 8 | code on both sides; other protocols: ports 0. */
struct moat_ct_key {
	__u8 addr0[16];
	__u8 addr1[16];
	__u16 port0;
	__u16 port1;
	__u8 family; /* 4 or 6 */
	__u8 protocol;
	__u8 pad[2];
};
_Static_assert(sizeof(struct moat_ct_key) == 40, "moat_ct_key");

/* moat_ct.flags */
enum moat_ct_flag {
	MOAT_CT_FIN_INIT = 0x01,   /* the initiator sent fin */
	MOAT_CT_FIN_RESP = 0x02,   /* the responder sent fin */
	MOAT_CT_REPORTED = 0x04,   /* the opening was reported: report the close too */
	MOAT_CT_CLOSE_SENT = 0x08, /* the closed event was sent */
	MOAT_CT_REPLIED = 0x10,	   /* the responder sent a packet */
	MOAT_CT_MIDSTREAM = 0x20,  /* tcp entry created by a packet that was not a syn */
	MOAT_CT_CUT = 0x40,	   /* cut by max_duration */
	/* the accept hook completes the entry (accept.h): it adds the owner and sends the opening
	 * event */
	MOAT_CT_AWAIT = 0x80,
	/* the verdict is the packet hooks' and may change: the accept hook judges with the owner */
	MOAT_CT_PENDING = 0x100,
	/* opened by moat's L7 relay as it decided (MOAT_POST_RELAYED): not judged again */
	MOAT_CT_RELAYED = 0x200,
	/* the deciding rule has a rate limit (MOAT_RULE_LIMITED): its packets are counted */
	MOAT_CT_LIMITED = 0x400,
	/* ids (ids.h): nothing more of this flow is copied (its first bytes were, or it was not
	 * sampled, or it was opened before) */
	MOAT_CT_IDS_DONE = 0x800,
	/* udp: blocked from its first datagram, and nothing of it has passed since (set_judgement
	 * clears it once its verdict is not blocked): a datagram from the side that did not send
	 * the first one opens the flow anew (judge.h, opens_anew). An entry without it stays
	 * blocked both ways */
	MOAT_CT_BLOCKED_FIRST = 0x1000,
	/* its first packet was made on this host, with no socket record (a socket outside
	 * attach.cgroup, a kernel tunnel's carrier): judged by the packet hooks' tables, as its
	 * re-judgings are */
	MOAT_CT_LOCAL_UNSEEN = 0x2000,
	/* detect: past its rule's max_duration, which prevent would cut (MOAT_CT_CUT); reported
	 * once, as detected, and not again after a re-judging (judge.h, set_judgement) */
	MOAT_CT_OVERDUE = 0x4000,
	/* blocked by the daemon after an ids drop signature matched its bytes (ids.mode prevent):
	 * stays blocked whatever a re-judging says */
	MOAT_CT_IDS_CUT = 0x8000,
	/* the post-route check's verdict, by the interface its packets leave by (ifindex): a
	 * re-judging judges it by that one, not by the route mirror's */
	MOAT_CT_POST_ROUTE = 0x10000,
};

/* What one flow has had copied so far for the ids signatures (ids.h), by direction (0: sent by
 * the initiator): in its conntrack entry */
struct moat_ids_flow {
	/* tcp: the sequence number after the furthest byte copied (the stream's start + copied) */
	__u32 next_seq[2];
	__u16 copied[2]; /* bytes of the stream up to the furthest byte copied */
	__u8 packets[2]; /* copies that brought bytes at new places */
	/* ids.h's IDS_STARTED, IDS_ACKED, IDS_LOST, IDS_TOLD; the high 4 bits: copies over bytes
	 * already copied */
	__u8 state[2];
	/* tcp: a keyed sum of the last copy over bytes already copied, either direction (ids.h,
	 * ids_sum; 0: none): the same copy again is not sent and spends no budget */
	__u64 again;
};
_Static_assert(sizeof(struct moat_ids_flow) == 24, "moat_ids_flow");

/* conntrack value. Written by both programs; read (and possibly re-judged) by the daemon. */
struct moat_ct {
	__u64 id;	   /* connection id: unique per entry */
	__u64 created_ns;  /* bpf_ktime_get_ns() of the first packet */
	__u64 last_ns;	   /* last packet */
	__u64 deadline_ns; /* max_duration: cut time (prevent), report time (detect); 0 = none */
	__u64 packets[2];  /* [0] sent by the initiator, [1] by the responder */
	__u64 bytes[2];
	__u32 rule;	  /* deciding rule in `generation` */
	__u32 generation; /* policy generation that judged it */
	__u32 ifindex;	  /* interface of the first packet */
	__u32 flags;	  /* MOAT_CT_* (u32: updated with atomics) */
	__u8 initiator;	  /* key side (0/1) that sent the first packet */
	__u8 direction;	  /* enum moat_direction */
	__u8 verdict;	  /* enum moat_event_type: allowed, blocked or detected */
	__u8 mode;	  /* enum moat_mode of the deciding rule */
	__u8 tcp_state;	  /* enum moat_tcp_state */
	__u8 icmp_type;	  /* of the first packet (re-judging needs it) */
	__u8 icmp_code;
	/* rate limit (ratelimit.h): packets from the remote this connection passes on credit its
	 * source's lease handed over (at most MOAT_LIMIT_CT_CHUNK), until limit_until;
	 * set_judgement clears it. Beside the fields every packet touches */
	__u8 limit_credit;
	__u64 limit_until;
	/* tcp, by side as packets[]: the sequence number after the furthest segment seen from it
	 * (0: none yet). A reset or fin counts only in order with it (conntrack.h, tcp_track) */
	__u32 seq_end[2];
	struct moat_owner owner;  /* the local socket's owner, from the socket hooks */
	struct moat_ids_flow ids; /* the ids signatures' copies so far (ids.h) */
};
/* 176 bytes: at 168 the table's elements are 256 bytes apart, and the connections of a busy
 * table compete for fewer cache sets (a packet of an established connection took ~20 ns more);
 * at 160 or 176 they are not */
_Static_assert(sizeof(struct moat_ct) == 176, "moat_ct");

/* a datagram whose first fragment passed: its later fragments pass with it */
struct moat_frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id; /* ipv4 identification or ipv6 fragment id */
	__u8 family;
	__u8 protocol;
	__u8 pad[2];
};
_Static_assert(sizeof(struct moat_frag_key) == 40, "moat_frag_key");

/* followed while the policy generation that passed the first fragment is live, for 60 s (the
 * longest the kernel waits to reassemble a datagram, IPv6's) */
struct moat_frag {
	__u64 ts_ns;	  /* when the first fragment passed (bpf_ktime_get_ns) */
	__u32 generation; /* the policy generation that passed it */
	__u8 pad[4];
};
_Static_assert(sizeof(struct moat_frag) == 16, "moat_frag");

/* One reported verdict or close, through the events ring buffer. Oriented by the
 * connection: local is this host, remote the peer; direction says who initiated. */
struct moat_event {
	__u64 ts_ns;	   /* bpf_ktime_get_ns() */
	__u64 conn_id;	   /* moat_ct.id; 0 when untracked */
	__u64 packets;	   /* closed, flow: both ways */
	__u64 bytes;	   /* closed, flow: both ways */
	__u64 duration_ns; /* closed, flow: last packet - first packet */
	__u8 local[16];
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 ifindex;
	__u32 rule; /* rule index in `generation`, MOAT_RULE_NONE if none */
	__u32 generation;
	__u8 type;	/* enum moat_event_type */
	__u8 hook;	/* enum moat_hook of the packet that caused the event */
	__u8 family;	/* 4 or 6 */
	__u8 protocol;	/* IPPROTO_* */
	__u8 direction; /* enum moat_direction */
	__u8 mode;	/* enum moat_mode of the rule */
	__u8 verdict;	/* closed: the connection's verdict; else == type */
	__u8 reason;	/* enum moat_reason */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 tcp_state; /* closed: the state reached */
	__u8 pad;
	__u32 redirect; /* redirected: the redirect's index + 1; else 0 */
	struct moat_owner owner;
};
_Static_assert(sizeof(struct moat_event) == 152, "moat_event");

/* what a redirect does when its target does not listen (failure.helper, on_unavailable), in the
 * low bit of moat_redirect.unavailable */
enum moat_unavailable {
	MOAT_UNAVAILABLE_BLOCK = 0,
	MOAT_UNAVAILABLE_ALLOW = 1,
};

/* flags in the same byte */
enum moat_redirect_flag {
	/* the kernel does not report the redirect (the DNS proxy reports each query) */
	MOAT_REDIRECT_QUIET = 0x80,
	/* taken only when the rule chosen at connect() has MOAT_RULE_LAYER7: moat's L7 relay
	 * judges the connection (a connection an earlier rule decides never enters it) */
	MOAT_REDIRECT_LAYER7 = 0x40,
	/* a loopback target served in every network namespace (the DNS proxy): a caller outside
	 * moat's namespace goes to the port netns_targets gives for its own */
	MOAT_REDIRECT_NETNS = 0x20,
};

/* the ports of moat's DNS proxy sockets in one network namespace (127.0.0.1 there) */
struct moat_netns_ports {
	__u16 udp; /* host order; 0: none */
	__u16 tcp;
};
_Static_assert(sizeof(struct moat_netns_ports) == 4, "moat_netns_ports");

/* where a redirect sends connections: its `to`, or moat's relay that prepends a PROXY header
 * and connects to `to` */
struct moat_redirect {
	__u8 addr[16];	  /* ipv4 mapped */
	__u16 port;	  /* host order */
	__u8 family;	  /* 4 or 6 */
	__u8 unavailable; /* enum moat_unavailable (bit 0), MOAT_REDIRECT_QUIET */
};
_Static_assert(sizeof(struct moat_redirect) == 20, "moat_redirect");

/* a socket address: a redirect target, or a redirected client as its proxy sees it */
struct moat_endpoint {
	__u8 addr[16]; /* ipv4 mapped; all zero: any address */
	__u16 port;    /* host order */
	__u8 protocol;
	__u8 pad;
};
_Static_assert(sizeof(struct moat_endpoint) == 20, "moat_endpoint");

/* a redirected client as its proxy sees it: its socket's address, and the network namespace of
 * the proxy's socket when that is not moat's own (moat's DNS proxy on a container's loopback:
 * ports are per namespace, so two namespaces' clients may share one); 0 otherwise */
struct moat_client {
	__u8 addr[16]; /* ipv4 mapped; all zero: any address */
	__u16 port;    /* host order */
	__u8 protocol;
	__u8 pad;
	__u32 pad2;
	__u64 netns; /* a network namespace cookie, or 0 */
};
_Static_assert(sizeof(struct moat_client) == 32, "moat_client");

/* a redirected connection: where its client meant to go, and who the client is */
struct moat_original {
	__u8 addr[16]; /* the original destination, ipv4 mapped */
	__u16 port;    /* host order */
	__u8 family;
	__u8 protocol;
	__u32 redirect;		     /* the redirect's index in `generation` */
	__u32 generation;	     /* policy generation that redirected it */
	struct moat_redirect target; /* where it was sent */
	struct moat_owner owner;
};
_Static_assert(sizeof(struct moat_original) == 96, "moat_original");

/* A name binding's key (tbl_names): who asked (the identity a DNS answer was given to; all zero:
 * everyone, the hosts file) and the address the answer gave. */
struct moat_name_key {
	__u64 cgroup_id;
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 uid;
	__u8 addr[16]; /* ipv4 mapped */
};
_Static_assert(sizeof(struct moat_name_key) == 40, "moat_name_key");

/* the name class of the address's names for that identity, until expires_ns */
struct moat_name_binding {
	__u32 nclass; /* >= 1: src/policy/compile/names.ts */
	__u32 pad;
	__u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
};
_Static_assert(sizeof(struct moat_name_binding) == 16, "moat_name_binding");

/* A names journal entry's key (name_journal): one name of one binding, NUL-padded lowercase
 * text. Its value is the name's expiry (__u64, CLOCK_MONOTONIC ns). Only user space reads and
 * writes it: the DNS proxy's store, kept across a daemon restart (the classes of tbl_names are
 * the policy's, the names are not). */
struct moat_name_journal_key {
	struct moat_name_key binding;
	char name[MOAT_NAME_LEN];
};
_Static_assert(sizeof(struct moat_name_journal_key) == 296, "moat_name_journal_key");

/* A spliced socket's peer (splice_peers, by the socket's cookie): where its bytes go, and how
 * many went (the relay waits for them to reach the peer before it passes a FIN on). */
struct moat_splice_peer {
	__u64 peer;  /* the peer's socket cookie: its key in splice_targets */
	__u64 bytes; /* bytes sent on to the peer */
};
_Static_assert(sizeof(struct moat_splice_peer) == 16, "moat_splice_peer");

/* Rate limits (ratelimit.h, docs/policy.md "rate_limit"): the algorithm of a limit */
enum moat_limit_algorithm {
	MOAT_LIMIT_TOKEN_BUCKET = 1,
	MOAT_LIMIT_FIXED_WINDOW = 2,
	MOAT_LIMIT_SLIDING_WINDOW = 3,
	MOAT_LIMIT_LEAKY_BUCKET = 4,
};

/* moat_limit_key.flags */
enum moat_limit_key_flag {
	/* the limit's overflow bucket: the sources that found no room in the table share it */
	MOAT_LIMIT_OVERFLOW = 0x01,
};

/* One rule's rate limit (tbl_limits, by rule index): `count` packets per `period_ns` from each
 * source (the remote address, grouped by prefix; with the server port when per_port). */
struct moat_limit {
	__u32 id; /* stable across reloads while the limit is unchanged: its state's key */
	__u32 count;
	__u64 period_ns;
	/* token and leaky bucket: time an empty bucket takes to fill (burst * period / count,
	 * rounded up), past which an idle bucket is full (empty for the leaky one) */
	__u64 fill_ns;
	__u64 report_ns; /* over-limit reports: at most one per source per this */
	__u32 burst;	 /* token and leaky bucket: the bucket's size in packets */
	__u8 algorithm;	 /* enum moat_limit_algorithm */
	__u8 prefix4;	 /* sources are grouped by these prefix lengths */
	__u8 prefix6;
	__u8 per_port; /* 1: one limit per server port */
	/* packets a cpu takes from the shared state at once and admits on its own (1: each packet
	 * asks the shared state); docs/policy.md gives the error bound this makes */
	__u32 lease;
	__u32 pad;
	__u64 lease_ns; /* buckets: how long a lease lasts (windows: to the window's end) */
};
_Static_assert(sizeof(struct moat_limit) == 56, "moat_limit");

/* A source's state key (limit_state): the limit, the source prefix (ipv4 mapped), the port */
struct moat_limit_key {
	__u32 id;
	__u16 port; /* per_port: the server port; else 0 */
	__u8 flags; /* enum moat_limit_key_flag */
	__u8 pad;
	__u8 addr[16];
};
_Static_assert(sizeof(struct moat_limit_key) == 24, "moat_limit_key");

/* A source's state, shared by every cpu and changed under its lock. Token bucket: a = credit,
 * leaky bucket: a = level (both in ns * count units, one packet is period_ns), t = time of the
 * last update. Fixed window: a = packets in window t. Sliding window: a = packets in window t,
 * b = packets in window t - 1. */
struct moat_limit_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 a;
	__u64 b;
	__u64 t;
	__u64 last_ns;	   /* the latest packet: user space removes idle entries */
	__u64 reported_ns; /* the latest over-limit report (0: none) */
	__u64 over;	   /* packets over the limit since that report */
};
_Static_assert(sizeof(struct moat_limit_state) == 56, "moat_limit_state");

/* One cpu's share of a source's limit (limit_lease_cache, else limit_leases; per cpu): packets
 * it may admit without the shared state until `until`, and after an over-limit answer, the time
 * before which the shared state cannot admit one (nothing but time refills it), so a flood over
 * the limit never takes the lock; its packets are counted here (atomically) and added to the
 * shared count at the next visit, or taken by the source's next report, whichever is first. */
struct moat_limit_lease {
	__u64 credit;
	__u64 until;
	__u64 denied_until;
	__u64 report_after; /* the source's next report is due (0: now) */
	__u64 over;	    /* packets over the limit not yet in the shared count */
};
_Static_assert(sizeof(struct moat_limit_lease) == 40, "moat_limit_lease");

/* One generation's scrubbing settings (scrub_config, by slot): the mss clamp of each family */
/* moat_scrub.flags */
enum moat_scrub_flag {
	MOAT_SCRUB_CLEAR_DF = 1,     /* ipv4: the don't-fragment bit cleared, both directions */
	MOAT_SCRUB_RANDOM_IP_ID = 2, /* ipv4 leaving (tc egress): the id replaced by a random one */
};

struct moat_scrub {
	__u16 mss4; /* 0: untouched */
	__u16 mss6;
	__u8 min_ttl; /* ttl / hop limit below this raised to it (0: untouched) */
	__u8 flags;   /* enum moat_scrub_flag */
	__u16 pad;
};
_Static_assert(sizeof(struct moat_scrub) == 8, "moat_scrub");

/* IDS signatures (ids.h, docs/policy.md "ids"): one generation's settings (ids_config, by
 * slot). bytes 0: no signatures, nothing copied */
struct moat_ids {
	__u16 bytes; /* of each direction of a flow, at most MOAT_IDS_MAX_BYTES */
	__u16 pad;
	__u32 sample; /* 1 in this many flows (0 or 1: every flow) */
	/* when these settings began to choose flows (bpf_ktime_get_ns; all ones: not yet): an older
	 * flow may have passed payload unread, so a direction it had not begun copying is not read
	 */
	__u64 since_ns;
};
_Static_assert(sizeof(struct moat_ids) == 16, "moat_ids");

enum moat_ids_const {
	MOAT_IDS_MAX_BYTES = 1024,
	/* a flow direction's first bytes come in at most this many packets */
	MOAT_IDS_MAX_PACKETS = 8,
	MOAT_IDS_HEADER = 128, /* the bytes of struct moat_ids_record before data */
	/* and tcp segments over bytes already copied (a retransmission, or another version of
	 * them) in at most this many more */
	MOAT_IDS_MAX_OVERLAPS = 8,
	/* moat_ids_record.flags: the direction's first copy */
	MOAT_IDS_FIRST = 0x01,
	/* a record without bytes: some of the direction went by uncopied (a full ring, the budget
	 * of MOAT_IDS_MAX_OVERLAPS spent, an urgent pointer not read, bytes its receiver
	 * acknowledged that were not seen); nothing more of it is copied */
	MOAT_IDS_LOST = 0x02,
	/* the segment had URG: `urgent` holds the place of the byte its receiver takes out */
	MOAT_IDS_URGENT = 0x04,
};

/* One copy of a packet's first bytes, through the ids_records ring buffer (its length is the
 * header and at least `len` bytes of data: a short copy's record has a fixed size, ids.h).
 * Oriented by the connection: local is this host. */
struct moat_ids_record {
	__u64 ts_ns;
	__u64 conn_id;	/* the conntrack entry's id: one flow's copies share it */
	__u8 local[16]; /* ipv4 mapped */
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 rule; /* the deciding rule in `generation` */
	__u32 generation;
	__u32 ifindex;
	__u16 offset; /* of data[0] in the direction's bytes */
	__u16 len;    /* bytes of data */
	__u8 family;
	__u8 protocol;
	__u8 direction; /* the connection's: enum moat_direction */
	__u8 to_server; /* 1: sent by the initiator */
	__u8 hook;	/* enum moat_hook */
	__u8 verdict;	/* the connection's: enum moat_event_type */
	/* tcp URG (MOAT_IDS_URGENT): the place in the direction's bytes of the byte the receiver
	 * takes out of the stream (Linux: the one before the urgent pointer), + 1; 0: none, or past
	 * MOAT_IDS_MAX_BYTES */
	__u16 urgent;
	__u8 flags; /* MOAT_IDS_FIRST, MOAT_IDS_LOST, MOAT_IDS_URGENT */
	__u8 pad[3];
	struct moat_owner owner; /* the local socket's owner, if the socket hooks saw it */
	__u8 data[MOAT_IDS_MAX_BYTES];
};
_Static_assert(sizeof(struct moat_ids_record) == 1152, "moat_ids_record");
_Static_assert(__builtin_offsetof(struct moat_ids_record, data) == MOAT_IDS_HEADER, "ids header");

/* SYN flood defence (syncookie.h, docs/policy.md "flood"): one defended port (flood_ports, by
 * port; 0: every port without its own entry) */
struct moat_flood_port {
	__u64 period_ns; /* one SYN's worth of the bucket: 1 s / syn_rate */
	__u64 hold_ns;	 /* an attack ends this long after its last SYN over the rate */
	__u32 syn_burst; /* SYNs the bucket holds */
	__u8 mode;	 /* MOAT_MODE_DETECT: counted only; MOAT_MODE_PREVENT: cookies */
	__u8 pad[3];
};
_Static_assert(sizeof(struct moat_flood_port) == 24, "moat_flood_port");

/* A defended port's SYN bucket and attack (flood_state, by the flood_ports key), changed under
 * its lock by the packet programs; read by user space for the attack events */
struct moat_flood_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 credit;	/* ns: a SYN spends period_ns, time refills it up to burst SYNs */
	__u64 t;	/* the last refill */
	__u64 since_ns; /* the current (or last) attack's start */
	__u64 until_ns; /* under attack before this (0: never attacked) */
	__u64 over;	/* SYNs over the rate, ever */
	__u64 syns;	/* SYNs, ever */
};
_Static_assert(sizeof(struct moat_flood_state) == 56, "moat_flood_state");

/* UDP amplification (flood_udp, key 0): the per-source, per-source-port limit of udp from the
 * ports in flood_udp_ports; limit.id 0: none */
struct moat_flood_udp {
	struct moat_limit limit;
	__u8 mode; /* MOAT_MODE_DETECT / PREVENT */
	__u8 pad[7];
};

/* oversized ICMP (flood_icmp, key 0): ICMP/ICMPv6 packets from remotes whose IP packet is longer
 * than max_size bytes (0: no limit) */
struct moat_flood_icmp {
	__u32 max_size;
	__u8 mode; /* MOAT_MODE_DETECT / PREVENT */
	__u8 pad[3];
};

/* the cookies' SipHash key (flood_secret, key 0): random, written by the daemon at start */
struct moat_flood_secret {
	__u64 k[2];
};

/* flood_counters: per cpu, by index */
enum moat_flood_counter {
	MOAT_FLOOD_SYN = 0,		/* SYNs to a defended port */
	MOAT_FLOOD_SYN_OVER = 1,	/* of them, over the port's rate (attack) */
	MOAT_FLOOD_COOKIE_SENT = 2,	/* SYN-ACKs with a cookie sent (XDP or TC ingress) */
	MOAT_FLOOD_COOKIE_DETECTED = 3, /* detect: SYNs prevent would have answered */
	MOAT_FLOOD_COOKIE_VALID = 4,	/* ACKs to a listener with a valid cookie */
	MOAT_FLOOD_COOKIE_INVALID = 5,	/* ACKs to a listener without one (the kernel resets) */
	MOAT_FLOOD_ASSIGNED = 6,	/* handed to the listener (bpf_sk_assign_tcp_reqsk) */
	MOAT_FLOOD_ASSIGN_FAILED = 7,	/* the kernel refused the request socket */
	MOAT_FLOOD_COOKIE_UNSENT = 8,	/* SYNs moat could not answer (passed to the kernel) */
	MOAT_FLOOD_UDP_DROPPED = 9,	/* udp from an amplification port over its limit */
	MOAT_FLOOD_UDP_DETECTED = 10,	/* the same in detect mode (passed) */
	MOAT_FLOOD_UDP_FULL = 11,	/* sources judged by the overflow bucket: table full */
	MOAT_FLOOD_ICMP_DROPPED = 12,	/* icmp packets over flood.icmp.max_size */
	MOAT_FLOOD_ICMP_DETECTED = 13,	/* the same in detect mode (passed) */
	MOAT_FLOOD_COOKIE_EGRESS = 14,	/* TC ingress's SYN-ACKs let out unjudged by TC egress */
	MOAT_FLOOD_MAX = 15,
};

/* flood_on: which defences the live policy has, so a packet without one pays one array read */
enum moat_flood_on {
	MOAT_FLOOD_ON_SYN = 1, /* flood.syn: flood_ports has entries */
	MOAT_FLOOD_ON_UDP = 2, /* flood.udp_amplification: flood_udp_ports has entries */
};

#endif /* MOAT_ABI_H */
