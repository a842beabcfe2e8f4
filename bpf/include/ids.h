/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IDS signatures (docs/policy.md "ids"): the packet programs copy the first bytes of each
 * direction of a flow (ids_config's `bytes`, in at most MOAT_IDS_MAX_PACKETS packets) to the
 * ids_records ring buffer, where the daemon matches the policy's signatures. The judge decides
 * what to copy (moat_ids_take, with the flow's conntrack entry, which keeps what the flow had
 * copied: no lookup of its own) and builds the record's header (moat_ids_note); the program copies
 * the bytes (moat_ids_xdp, moat_ids_skb), since only it knows its context's type. A TCP direction
 * is copied as its receiver reads it: from ISN+1 (a SYN's payload never), each segment at its
 * place, again over bytes already copied until the receiver acknowledged them (a decoy it dropped,
 * then the real one: the daemon compares; the same copy twice in a row is sent once: a
 * retransmission to a lossy receiver), with the byte an urgent pointer takes out of the stream;
 * what cannot be copied loses the direction, and the daemon is told. A flow past its first
 * bytes, or left out by the sample, has MOAT_CT_IDS_DONE and costs one flag test; without
 * signatures nothing is looked up past the payload length. A full ring loses the copy (counted,
 * and the direction), never the packet. */
#ifndef MOAT_IDS_H
#define MOAT_IDS_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "events.h"
#include "conntrack.h"
#include "ring_wake.h"

/* a global function's argument that is the program's context (the kernel reads the tag) */
#ifndef __arg_ctx
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#endif

/* past this many packets (both ways), a flow copies no bytes at new places (a tcp direction still
 * copies another version of what it copied, until its receiver acknowledged it) */
#define MOAT_IDS_FLOW_PACKETS (4 * MOAT_IDS_MAX_PACKETS)

/* the l4 payload of p: its offset in the frame and its length (0: none) */
static __always_inline __u32 ids_payload(const struct pkt *p, __u32 frame_len, __u32 *off)
{
	__u32 start;

	if (p->t.proto == IPPROTO_TCP)
		start = p->l4_off + p->l4_len;
	else if (p->t.proto == IPPROTO_UDP)
		start = p->l4_off + 8;
	else
		return 0;
	/* the ip length, not the frame's: ethernet pads short frames */
	__u32 end = p->l3_end > p->l3_off ? p->l3_end : frame_len;
	if (end > frame_len)
		end = frame_len;
	if (end <= start)
		return 0;
	*off = start;
	return end - start;
}

/* 1 in `sample` flows, by a hash of the flow's addresses and ports that is the same both ways
 * (a flow left out is marked past its copies at its first packet: one flag test after it) */
static __always_inline int ids_sampled(const struct tuple *t, __u32 sample)
{
	if (sample <= 1)
		return 1;
	const __u32 *s = (const __u32 *)t->src;
	const __u32 *d = (const __u32 *)t->dst;
	__u64 x = (__u64)((s[0] ^ d[0]) + (s[1] ^ d[1]) + (s[2] ^ d[2]) + (s[3] ^ d[3])) << 16;
	x ^= (__u32)(t->sport ^ t->dport) | (__u64)t->proto << 48;
	__u32 h = (__u32)((x * 0x9E3779B97F4A7C15ull) >> 32);
	return h % sample == 0;
}

static __always_inline void ids_done(struct moat_ct *ct)
{
	if (!(ct->flags & MOAT_CT_IDS_DONE))
		__sync_fetch_and_or(&ct->flags, MOAT_CT_IDS_DONE);
}

/* moat_ids_flow.state, by direction */
enum {
	IDS_STARTED = 0x01, /* tcp: next_seq and copied place the stream (its start: ISN+1) */
	IDS_ACKED = 0x02,   /* tcp: the receiver acknowledged every byte copied */
	IDS_LOST = 0x04,    /* bytes went by uncopied: nothing more is copied, the daemon is told */
	IDS_TOLD = 0x08,    /* ... and was (a record with MOAT_IDS_LOST) */
	IDS_OVERLAP = 0x10, /* one copy over bytes already copied: the high 4 bits count them */
};

#define TCP_URG 0x20

/* moat_ids_take's answer for a packet of a flow it does not read */
#define IDS_UNREAD (-2)

/* moat_ids_take's and moat_ids_note's `at`: the packet is its connection's first */
#define IDS_AT_FIRST (1ull << 34)

/* moat_ids_take's answer for a copy over bytes already copied: its place, with this bit */
#define IDS_PLACE_AGAIN (1 << 16)

/* moat_ids_record.flags within the kernel: the copy is over bytes already copied (the program
 * compares it with the one before, moat_ids_repeat); taken off before the record is sent */
#define IDS_AGAIN 0x80

/* the prime 2^31 - 1: a copy's sum (ids_sum) is two polynomials modulo it */
#define IDS_SUM_P 0x7fffffffull

/* the repeats of one copy let go free (moat_ids_repeat), counted in the kept sum's low byte: past
 * them a repeat spends the budget as another version does, so a sender that holds a hole open
 * (the bytes ahead of it are never acknowledged) cannot have each copy summed for nothing */
#define IDS_FREE_REPEATS 64
#define IDS_REPEATS_MASK 0xffull

/* the two points the polynomials are evaluated at, each in [1, IDS_SUM_P), drawn at random on
 * first use (0: not yet): unknown to a sender, who cannot choose bytes that sum alike */
static __u64 ids_sum_points;

/* no more bytes at new places are copied: `want` bytes (0 past the flow's first
 * MOAT_IDS_FLOW_PACKETS packets), or MOAT_IDS_MAX_PACKETS copies */
static __always_inline int ids_filled(const struct moat_ids_flow *f, int d, __u32 want)
{
	return f->copied[d & 1] >= want || f->packets[d & 1] >= MOAT_IDS_MAX_PACKETS;
}

/* Nothing more of the direction is copied. A tcp direction also waits until its receiver
 * acknowledged what was copied: until then another version of those bytes (the one the
 * receiver takes, when the first was a decoy it dropped) may come, and is copied too. */
static __always_inline int ids_direction_done(const struct moat_ids_flow *f, int d, __u32 want,
					      int tcp)
{
	__u8 s = f->state[d & 1];

	if (s & (IDS_TOLD | IDS_LOST))
		return !!(s & IDS_TOLD);
	if (!ids_filled(f, d, want))
		return 0;
	return !tcp || !f->copied[d & 1] || (s & IDS_ACKED);
}

/* whether the sender of this packet (direction d) is this host: what leaves is sent here */
static __always_inline int ids_sent_here(const struct moat_ct *ct, int d)
{
	return (d == 0) == (ct->direction == MOAT_DIR_EGRESS);
}

/* The acknowledgement this packet (from direction d) carries for the other direction: once it
 * covers every byte copied, what comes again of those bytes is dropped by the receiver and is
 * not copied. One that acknowledges bytes moat did not copy while it still copied new ones (a
 * SYN's payload taken by TCP Fast Open, a segment that went by another way) or bytes before the
 * stream's start means the receiver reads another stream: the direction is lost. Only the
 * receiver's own packets count: one seen coming in that claims to be from this host is not. */
static __always_inline void ids_acked(struct moat_ids_flow *f, const struct pkt *p,
				      const struct moat_ct *ct, const struct ev_from *from, int d,
				      __u32 want)
{
	int e = (d ^ 1) & 1;
	__u8 s = f->state[e];

	if (!(p->tcp_flags & TCP_ACK) || (p->tcp_flags & (TCP_RST | TCP_SYN)) == TCP_RST)
		return;
	if (!(s & IDS_STARTED) || (s & (IDS_ACKED | IDS_LOST)))
		return;
	if ((from->hook == MOAT_HOOK_TC_EGRESS) != ids_sent_here(ct, d))
		return;
	__u32 copied = f->copied[e];
	__s32 a = (__s32)(p->ack - (f->next_seq[e] - copied));
	if (a < 0 || ((__u32)a > copied && !ids_filled(f, e, want)))
		f->state[e] = s | IDS_LOST;
	else if ((__u32)a >= copied)
		f->state[e] = s | IDS_ACKED;
}

/* the program's key in ids_scratch: one record being built per hook */
static __always_inline __u32 ids_key(__u8 hook)
{
	return hook == MOAT_HOOK_XDP_INGRESS ? 0 : hook == MOAT_HOOK_TC_EGRESS ? 1 : 2;
}

/* A copy of at most IDS_RESERVED_MOST bytes (ids.bytes' default) is built in the ring's own
 * record, reserved at the smallest of four sizes that holds it (bpf_ringbuf_reserve takes a
 * constant): the header and 64, 128, 256 or 512 bytes, of which the record's `len` are the
 * copy's. Its bytes go once, from the packet into the ring; a longer copy, or one over bytes
 * already copied (summed before it is sent or not), is built in the scratch and sent with
 * bpf_ringbuf_output, a second copy of it. */
#define IDS_RESERVED_MOST 512

/* the bytes a copy of `len` bytes takes in the ring, but the kernel's own header */
static __always_inline __u32 ids_record_bytes(__u32 len)
{
	if (len > IDS_RESERVED_MOST)
		return MOAT_IDS_HEADER + len;
	if (len > 256)
		return MOAT_IDS_HEADER + 512;
	if (len > 128)
		return MOAT_IDS_HEADER + 256;
	return MOAT_IDS_HEADER + (len > 64 ? 128 : 64);
}

/* Whether the ring has room now for a copy of `len` bytes (its record, the kernel's own 8-byte
 * header, rounded up to 8): a flood of new flows fills the ring faster than the daemon
 * reads it, and a copy that cannot go in costs only this check, not the record's build and a
 * failed send under the ring's lock. Another cpu may take the room meanwhile: the send counts
 * that loss too. */
static __always_inline int ids_room(__u32 len)
{
	__u64 used = bpf_ringbuf_query(&ids_records, BPF_RB_AVAIL_DATA);
	__u64 need = (8 + ids_record_bytes(len) + 7) & ~7ull;

	/* the kernel refuses a record that would fill the ring exactly. The ring's size is its
	 * map's, a constant (a pinned ring is adopted only at that size): one helper call fewer */
	return used + need < MOAT_IDS_RING_SIZE;
}

/* a 16-byte address, in two words: both ends are 8-byte aligned (a struct tuple's, a record's
 * in its map value), which a copy of __u8 arrays cannot know, and copies byte by byte */
static __always_inline void ids_copy_address(__u8 *to, const __u8 *from)
{
	__u64 *t = (__u64 *)to;
	const __u64 *f = (const __u64 *)from;

	t[0] = f[0];
	t[1] = f[1];
}

/* the record's fields but its bytes: the flow, where its direction d stands. A global function:
 * verified once, not on each path of moat_ids_note to its two calls */
__noinline int ids_header(struct moat_ids_record *r, const struct pkt *p, const struct moat_ct *ct,
			  const struct ev_from *from, int d)
{
	if (!r || !p || !ct || !from)
		return 0;
	/* the local side: the sender of what leaves, the receiver of what comes in */
	int leaving = from->hook == MOAT_HOOK_TC_EGRESS;
	ids_copy_address(r->local, leaving ? p->t.src : p->t.dst);
	ids_copy_address(r->remote, leaving ? p->t.dst : p->t.src);
	r->local_port = leaving ? p->t.sport : p->t.dport;
	r->remote_port = leaving ? p->t.dport : p->t.sport;
	/* the judge set it to this packet's time */
	r->ts_ns = ct->last_ns;
	r->conn_id = ct->id;
	r->rule = ct->rule;
	r->generation = ct->generation;
	r->ifindex = from->ifindex;
	r->offset = ct->ids.copied[d & 1];
	r->len = 0;
	r->family = p->t.family;
	r->protocol = p->t.proto;
	r->direction = ct->direction & 1;
	r->to_server = !d;
	r->hook = from->hook;
	r->verdict = ct->verdict;
	r->urgent = 0;
	r->flags = 0;
	r->owner = ct->owner;
	return 0;
}

/* A lost direction, told to the daemon with a record without bytes (once: a full ring, or the
 * other direction told first, leaves it to the flow's next packet). The record's local and remote
 * follow this packet, whichever way it goes. */
static __always_inline void ids_tell(const struct pkt *p, struct moat_ct *ct,
				     const struct ev_from *from, int d)
{
	struct moat_ids_flow *f = &ct->ids;

	if ((f->state[d & 1] & (IDS_LOST | IDS_TOLD)) != IDS_LOST)
		d ^= 1;
	if ((f->state[d & 1] & (IDS_LOST | IDS_TOLD)) != IDS_LOST)
		return;
	__u32 key = ids_key(from->hook);
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return;
	ids_header(r, p, ct, from, d);
	r->flags = MOAT_IDS_LOST;
	if (!bpf_ringbuf_output(&ids_records, r, MOAT_IDS_HEADER, 0))
		f->state[d & 1] |= IDS_TOLD;
}

/* What of a tcp segment of direction d (len bytes) to copy: p->ids_off and p->ids_len narrowed
 * to it, its place in the stream returned (-1: nothing). Sets the direction lost for what it
 * cannot copy. */
static __always_inline int ids_tcp_place(struct pkt *p, struct moat_ids_flow *f, int d, __u32 want,
					 __u32 len)
{
	__u8 s = f->state[d & 1];
	__u8 flags = p->tcp_flags;

	if (s & IDS_LOST)
		return -1;
	/* the receiver drops a segment's bytes without ACK, or with RST */
	if ((flags & (TCP_ACK | TCP_RST)) != TCP_ACK)
		return -1;
	int filled = ids_filled(f, d, want);
	if (!(s & IDS_STARTED)) {
		/* not read (a flow older than the settings, or past its first packets) */
		if (filled)
			return -1;
		/* no SYN seen: the stream starts with its first bytes */
		f->next_seq[d & 1] = p->seq;
		f->copied[d & 1] = 0;
		s |= IDS_STARTED;
		f->state[d & 1] = s;
	}
	__u32 copied = f->copied[d & 1];
	__u32 start = f->next_seq[d & 1] - copied;
	__s32 rel = (__s32)(p->seq - start);
	/* copied up to: the window, or what was copied once the window takes nothing new */
	__u32 limit = filled ? copied : want;
	__u32 skip = 0;
	if (rel < 0) {
		/* bytes before the stream's start: the receiver takes only those after it */
		skip = (__u32)-rel;
		rel = 0;
	}
	if ((__u32)rel >= limit || skip >= len) {
		/* an urgent pointer there names no byte copied (it is past the segment's start) */
		if ((flags & TCP_URG) && skip)
			f->state[d & 1] = s | IDS_LOST;
		return -1;
	}
	__u32 end = (__u32)rel + (len - skip);
	if (end > limit)
		end = limit;
	if (end > copied) {
		f->packets[d & 1] += 1;
		f->copied[d & 1] = end;
		f->next_seq[d & 1] = start + end;
		f->state[d & 1] = s & ~IDS_ACKED;
	} else if (s & IDS_ACKED) {
		/* the receiver has them all and drops them; an urgent pointer on them may name a
		 * byte still to come */
		if ((flags & TCP_URG) && !filled)
			f->state[d & 1] = s | IDS_LOST;
		return -1;
	} else if ((s >> 4) >= MOAT_IDS_MAX_OVERLAPS) {
		f->state[d & 1] = s | IDS_LOST;
		return -1;
	} else {
		/* spent; given back if it repeats the copy before (moat_ids_repeat) */
		f->state[d & 1] = s + IDS_OVERLAP;
		p->ids_off += skip;
		p->ids_len = end - (__u32)rel;
		return rel | IDS_PLACE_AGAIN;
	}
	p->ids_off += skip;
	p->ids_len = end - (__u32)rel;
	return rel;
}

/* A tcp packet without bytes to copy: its SYN places the stream (ISN+1; a SYN's payload is never
 * copied); an urgent pointer while bytes may still be copied is not read (only the program has
 * the packet), so the direction is lost. */
static __always_inline void ids_tcp_bare(const struct pkt *p, struct moat_ids_flow *f, int d,
					 __u32 want)
{
	__u8 s = f->state[d & 1];

	if (p->tcp_flags & TCP_SYN) {
		if (!(s & IDS_STARTED) && !f->packets[d & 1]) {
			f->next_seq[d & 1] = p->seq + 1;
			f->copied[d & 1] = 0;
			f->state[d & 1] = s | IDS_STARTED;
		}
		return;
	}
	if (!(p->tcp_flags & TCP_URG) || (s & IDS_LOST))
		return;
	if ((p->tcp_flags & (TCP_ACK | TCP_RST)) != TCP_ACK)
		return;
	if (!ids_filled(f, d, want) || !(s & IDS_ACKED))
		f->state[d & 1] = s | IDS_LOST;
}

/* What of this packet to copy, judged with its flow's conntrack entry ct (in the table, or a new
 * one about to go in): the payload's offset and length into p->ids_off and p->ids_len, its place
 * in the direction's bytes returned (-1: nothing to copy; IDS_UNREAD: the flow is not read),
 * the flow's progress in ct->ids.
 * at: the frame's length, the live slot (bit 32), whether the packet's sender is the flow's
 * responder (bit 33) and whether it is its connection's first (IDS_AT_FIRST), packed (a global
 * function takes at most 5 arguments). A global function, verified once; called from the judge, its
 * frame counts in the judge's call chain (keep it small: that chain is near the 512-byte limit;
 * moat_ids_note, which builds the record, is called after it, not from it). */
__noinline int moat_ids_take(struct pkt *p, struct moat_ct *ct, const struct ev_from *from,
			     __u64 at)
{
	if (!p || !ct || !from)
		return IDS_UNREAD;
	p->ids_len = 0;
	__u32 slot = (at >> 32) & 1;
	const struct moat_ids *cfg = bpf_map_lookup_elem(&ids_config, &slot);
	if (!cfg || !cfg->bytes)
		return IDS_UNREAD;
	int tcp = p->t.proto == IPPROTO_TCP;
	__u32 len = ids_payload(p, (__u32)at, &p->ids_off);
	if ((ct->flags & MOAT_CT_IDS_DONE) || !ct->id)
		return IDS_UNREAD;
	/* a flow the sample leaves out, or of a protocol never read, is past its copies from its
	 * first packet: its later packets cost the judge one flag test (its quiet path) */
	if ((!tcp && p->t.proto != IPPROTO_UDP) || !ids_sampled(&p->t, cfg->sample)) {
		ids_done(ct);
		return IDS_UNREAD;
	}
	/* a tcp packet without payload may still place the stream (SYN, ACK, URG) */
	if (!len && !tcp)
		return IDS_UNREAD;
	struct moat_ids_flow *f = &ct->ids;
	/* read only if seen from its start */
	if (ct->flags & MOAT_CT_MIDSTREAM) {
		ids_done(ct);
		return IDS_UNREAD;
	}
	/* the bytes a direction copies; past the flow's first packets, no more at new places (a
	 * tcp direction still waits for the acknowledgement of what was copied) */
	__u32 want = cfg->bytes < MOAT_IDS_MAX_BYTES ? cfg->bytes : MOAT_IDS_MAX_BYTES;
	if (ct->packets[0] + ct->packets[1] > MOAT_IDS_FLOW_PACKETS)
		want = 0;
	int d = (at >> 33) & 1;
	/* a direction that would start now in a flow older than the settings: its first bytes may
	 * have gone by unread (ids off, or the flow left out by another sample), so a copy would
	 * not start at the stream's start */
	if (!f->packets[d] && !(f->state[d] >> 4) && ct->created_ns < cfg->since_ns)
		f->packets[d] = MOAT_IDS_MAX_PACKETS;
	__s32 place = f->copied[d];
	if (tcp) {
		if (len && !(p->tcp_flags & TCP_SYN))
			return ids_tcp_place(p, f, d, want, len);
		ids_tcp_bare(p, f, d, want);
		return -1;
	}
	if (ids_filled(f, d, want))
		return -1;
	if (len > want - f->copied[d])
		len = want - f->copied[d];
	f->copied[d] += len;
	f->packets[d] += 1;
	p->ids_len = len;
	return place;
}

/* A tcp packet's acknowledgement for the other direction (ids_acked), a lost direction told
 * to the daemon, then whether the flow is past its copies: both directions done, a lost one
 * once it was told */
static __always_inline void ids_settle(const struct pkt *p, struct moat_ct *ct,
				       const struct ev_from *from, int d, __u32 slot)
{
	const struct moat_ids *cfg = bpf_map_lookup_elem(&ids_config, &slot);
	if (!cfg || (ct->flags & (MOAT_CT_IDS_DONE | MOAT_CT_MIDSTREAM)))
		return;
	__u32 want = cfg->bytes < MOAT_IDS_MAX_BYTES ? cfg->bytes : MOAT_IDS_MAX_BYTES;
	if (ct->packets[0] + ct->packets[1] > MOAT_IDS_FLOW_PACKETS)
		want = 0;
	int tcp = p->t.proto == IPPROTO_TCP;
	if (tcp)
		ids_acked(&ct->ids, p, ct, from, d, want);
	ids_tell(p, ct, from, d);
	if (ids_direction_done(&ct->ids, 0, want, tcp) &&
	    ids_direction_done(&ct->ids, 1, want, tcp))
		ids_done(ct);
}

/* After moat_ids_take (at: the same), given the place it returned: a lost direction told to the
 * daemon, whether the flow is past its copies, and the record of what take chose to copy, built
 * into ids_scratch at the hook's key for the program, which alone can load the bytes. The copy
 * is noted in p->ids_noted whether or not the ring has room: the daemon is told what it missed.
 * A global function beside take, so the judge's call chain holds one of their frames at a
 * time. */
__noinline int moat_ids_note(struct pkt *p, struct moat_ct *ct, const struct ev_from *from,
			     __u64 at, int place)
{
	if (!p || !ct || !from || !ct->id)
		return 0;
	int d = (at >> 33) & 1;
	if (place == IDS_UNREAD)
		return 0;
	/* a new connection's first packet has nothing to settle: it acknowledges nothing copied (a
	 * tcp one read is a SYN without ACK), has lost nothing to tell, and leaves a direction of
	 * the flow still to copy */
	if (place < 0 && (at & IDS_AT_FIRST))
		return 0;
	ids_settle(p, ct, from, d, (at >> 32) & 1);
	if (place < 0 || !p->ids_len)
		return 0;
	struct moat_ids_flow *f = &ct->ids;
	__u32 len = p->ids_len;
	p->ids_noted = 1 + d;
	p->ids_len = 0;
	if (!ids_room(len)) {
		count(MOAT_CNT_IDS_LOST, len);
		f->state[d] |= IDS_LOST;
		return 0;
	}
	__u32 key = ids_key(from->hook);
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return 0;
	ids_header(r, p, ct, from, d);
	if (place & IDS_PLACE_AGAIN)
		r->flags = IDS_AGAIN;
	r->offset = (__u16)place;
	r->len = (__u16)len;
	/* its first copy: one copy counted, of either kind */
	if (f->packets[d] + (f->state[d] >> 4) == 1)
		r->flags |= MOAT_IDS_FIRST;
	if (p->t.proto == IPPROTO_TCP && (p->tcp_flags & TCP_URG)) {
		/* the program reads the pointer: here, the bytes cut off the segment's front */
		r->flags |= MOAT_IDS_URGENT;
		r->urgent = (__u16)(p->ids_off - (p->l4_off + p->l4_len));
	}
	p->ids_len = len;
	return 0;
}

/* the judge's call of moat_ids_take, then moat_ids_note, for a packet that passes:
 * from_responder is whether its sender is not the flow's initiator */
static __always_inline void ids_take(struct pkt *p, struct moat_ct *ct, const struct ev_from *from,
				     __u32 frame_len, __u32 slot, int from_responder)
{
	__u64 at = frame_len | (__u64)(slot & 1) << 32 | (__u64)(from_responder & 1) << 33;

	moat_ids_note(p, ct, from, at, moat_ids_take(p, ct, from, at));
}

/* ids_take for a new connection's first packet (IDS_AT_FIRST) */
static __always_inline void ids_take_first(struct pkt *p, struct moat_ct *ct,
					   const struct ev_from *from, __u32 frame_len, __u32 slot,
					   int from_responder)
{
	__u64 at =
	    frame_len | (__u64)(slot & 1) << 32 | (__u64)(from_responder & 1) << 33 | IDS_AT_FIRST;

	moat_ids_note(p, ct, from, at, moat_ids_take(p, ct, from, at));
}

/* A packet that does not pass after ids_take noted its copy in the entry k (a new connection's
 * first packet, dropped over its rate limit): whether or not the ring took the copy, it is not
 * sent, so the entry's direction is set back to nothing copied, and the next packet that passes
 * starts the copy (a gap would stop the daemon reading that direction). Only that direction: a
 * reply on another cpu may have started the other meanwhile. */
static __always_inline void ids_unnote(const struct moat_ct_key *k, struct pkt *p)
{
	if (!p->ids_noted)
		return;
	__u32 d = (p->ids_noted - 1) & 1;
	p->ids_noted = 0;
	p->ids_len = 0;
	struct moat_ct *e = bpf_map_lookup_elem(&conntrack, k);
	if (!e)
		return;
	e->ids.next_seq[d] = 0;
	e->ids.copied[d] = 0;
	e->ids.packets[d] = 0;
	e->ids.state[d] = 0;
}

/* A record the ring did not take: its direction is lost (the daemon is told with the flow's next
 * packet). The entry is looked up again: the program has only the packet. */
static __always_inline void ids_missed(const struct pkt *p)
{
	struct moat_ct_key k __attribute__((aligned(8)));

	if (!p->ids_noted)
		return;
	ct_key(&p->t, &k);
	struct moat_ct *e = bpf_map_lookup_elem(&conntrack, &k);
	if (e)
		e->ids.state[(p->ids_noted - 1) & 1] |= IDS_LOST;
}

/* one 16-bit piece into both polynomials (a, b < 2^31 + 2 before and after: no overflow) */
static __always_inline void ids_sum_piece(__u64 *a, __u64 *b, __u64 points, __u64 piece)
{
	__u64 x = *a * (points & 0xffffffff) + piece;
	x = (x & IDS_SUM_P) + (x >> 31);
	*a = (x & IDS_SUM_P) + (x >> 31);
	x = *b * (points >> 32) + piece;
	x = (x & IDS_SUM_P) + (x >> 31);
	*b = (x & IDS_SUM_P) + (x >> 31);
}

/* a little-endian word's 4 pieces */
static __always_inline void ids_sum_word(__u64 *a, __u64 *b, __u64 points, __u64 word)
{
	ids_sum_piece(a, b, points, word & 0xffff);
	ids_sum_piece(a, b, points, (word >> 16) & 0xffff);
	ids_sum_piece(a, b, points, (word >> 32) & 0xffff);
	ids_sum_piece(a, b, points, word >> 48);
}

/* a copy's sum so far, and the points it is taken at */
struct ids_sum_acc {
	__u64 a, b, points;
};

/* eight of a copy's words */
struct ids_words {
	__u64 w[8];
};

/* The first n (up to eight) of words w into the sum. A global function, which the verifier
 * checks once, not once for each word of the longest copy: a call each eight words */
__noinline int ids_sum_words(struct ids_sum_acc *acc, const struct ids_words *w, __u32 n)
{
	if (!acc || !w)
		return 0;
	__u64 a = acc->a, b = acc->b, points = acc->points;
	for (__u32 i = 0; i < 8; i++) {
		if (i >= n)
			break;
		ids_sum_word(&a, &b, points, w->w[i]);
	}
	acc->a = a;
	acc->b = b;
	return 0;
}

static __always_inline __u64 ids_sum_points_drawn(void)
{
	__u64 points = ids_sum_points;

	if (points)
		return points;
	points = (__u64)(bpf_get_prandom_u32() % (IDS_SUM_P - 1) + 1) << 32 |
		 (bpf_get_prandom_u32() % (IDS_SUM_P - 1) + 1);
	/* another cpu may have drawn them meanwhile: its points stand */
	__u64 was = __sync_val_compare_and_swap(&ids_sum_points, 0, points);
	return was ? was : points;
}

/* The sum of a copy (its direction, place, length, urgent byte and bytes), never 0: two
 * polynomials in its 16-bit pieces at secret points, the second's low byte left for the count of
 * free repeats. Two different copies (at most 516 pieces) sum alike with a chance below 2^-35, so
 * a sender cannot pass one version off as another. */
static __always_inline __u64 ids_sum(const struct moat_ids_record *r, __u32 len)
{
	struct ids_sum_acc acc = {.points = ids_sum_points_drawn()};
	__u64 points = acc.points;

	ids_sum_piece(&acc.a, &acc.b, points, 1 + r->to_server + (r->flags & MOAT_IDS_URGENT));
	ids_sum_piece(&acc.a, &acc.b, points, r->offset);
	ids_sum_piece(&acc.a, &acc.b, points, len);
	ids_sum_piece(&acc.a, &acc.b, points, r->urgent);
	/* whole words eight at a time, then the last one's bytes */
	__u32 words = len / 8;
	for (__u32 i = 0; i < MOAT_IDS_MAX_BYTES / 64; i++) {
		if (i * 8 >= words)
			break;
		ids_sum_words(&acc, (const struct ids_words *)&r->data[i * 64], words - i * 8);
	}
	__u64 a = acc.a, b = acc.b;
	__u32 rest = len % 8;
	if (rest) {
		__u64 word = *(const __u64 *)&r->data[(words & (MOAT_IDS_MAX_BYTES / 8 - 1)) * 8];
		/* the scratch record's bytes past this copy are an older copy's */
		ids_sum_word(&a, &b, points, word & ((1ull << (rest * 8)) - 1));
	}
	a = a >= IDS_SUM_P ? a - IDS_SUM_P : a;
	b = b >= IDS_SUM_P ? b - IDS_SUM_P : b;
	return (1ull << 63 | a << 32 | b) & ~IDS_REPEATS_MASK;
}

/* Whether a copy over bytes already copied (IDS_AGAIN, its bytes loaded) repeats the copy before
 * it of its flow, either direction: the daemon has those bytes at that place already, so it is
 * not sent, and gives back the budget it spent (a retransmission to a receiver that lost it
 * costs nothing; another version still spends it). Else its sum is kept for the next. A global
 * function: only these copies pay for the sum and the entry's lookup. */
__noinline int moat_ids_repeat(const struct pkt *p, struct moat_ids_record *r)
{
	struct moat_ct_key k __attribute__((aligned(8)));

	if (!p || !r)
		return 0;
	r->flags &= ~IDS_AGAIN;
	__u64 sum = ids_sum(r, r->len < MOAT_IDS_MAX_BYTES ? r->len : MOAT_IDS_MAX_BYTES);
	ct_key(&p->t, &k);
	struct moat_ct *e = bpf_map_lookup_elem(&conntrack, &k);
	if (!e)
		return 0;
	__u64 repeats = e->ids.again & IDS_REPEATS_MASK;
	if ((e->ids.again & ~IDS_REPEATS_MASK) != sum) {
		e->ids.again = sum;
		return 0;
	}
	if (repeats >= IDS_FREE_REPEATS)
		return 0;
	e->ids.again = sum | (repeats + 1);
	int d = !r->to_server;
	if (e->ids.state[d] >> 4)
		e->ids.state[d] -= IDS_OVERLAP;
	return 1;
}

/* The ring's wakeup for a copy sent now. The record's time is its packet's clock, which the judge
 * read in this same run (a flow still copying takes no quiet path with the tick's time; another
 * cpu's packet of the flow moves it only on): no clock read of its own (ring_wake.h). */
static __always_inline __u64 ids_wake(const struct moat_ids_record *r)
{
	return ring_wake(&ids_woken_ns, r->ts_ns);
}

/* a copy the ring did not take: counted, its direction lost */
static __always_inline void ids_lost(const struct pkt *p, __u32 len)
{
	count(MOAT_CNT_IDS_LOST, len);
	ids_missed(p);
}

/* the record ids_take built, with `len` bytes from `off`, to the ring buffer */
static __always_inline void ids_submit(const struct pkt *p, struct moat_ids_record *r, __u32 len)
{
	if ((r->flags & IDS_AGAIN) && moat_ids_repeat(p, r))
		return;
	if (bpf_ringbuf_output(&ids_records, r, MOAT_IDS_HEADER + len, ids_wake(r)))
		ids_lost(p, len);
	else
		count(MOAT_CNT_IDS_COPIED, len);
}

/* Whether the copy of `len` bytes that the scratch's header r starts is built in the ring's own
 * record (ids_reserve) */
static __always_inline int ids_reserved(const struct moat_ids_record *r, __u32 len)
{
	return len <= IDS_RESERVED_MOST && !(r->flags & IDS_AGAIN);
}

/* n, which the caller knows is at most `most`, bounded so the verifier knows it too */
static __always_inline __u32 ids_fit(__u32 n, __u32 most)
{
	barrier_var(n);
	return n > most ? most : n;
}

/* The ring's record for a copy of *len (1..IDS_RESERVED_MOST) bytes, at its size
 * (ids_record_bytes), with the scratch's header r; the bytes go at MOAT_IDS_HEADER. NULL: the
 * ring is full (counted). *len comes back bounded by the record's size for the verifier. */
static __always_inline __u64 *ids_reserve(const struct pkt *p, const struct moat_ids_record *r,
					  __u32 *len)
{
	__u32 n = *len;
	__u64 *w;

	if (n <= 64) {
		w = bpf_ringbuf_reserve(&ids_records, MOAT_IDS_HEADER + 64, 0);
		n = ids_fit(n, 64);
	} else if (n <= 128) {
		w = bpf_ringbuf_reserve(&ids_records, MOAT_IDS_HEADER + 128, 0);
		n = ids_fit(n, 128);
	} else if (n <= 256) {
		w = bpf_ringbuf_reserve(&ids_records, MOAT_IDS_HEADER + 256, 0);
		n = ids_fit(n, 256);
	} else {
		w = bpf_ringbuf_reserve(&ids_records, MOAT_IDS_HEADER + IDS_RESERVED_MOST, 0);
	}
	*len = n;
	if (!w) {
		ids_lost(p, n);
		return NULL;
	}
	const __u64 *h = (const __u64 *)r;
	for (int i = 0; i < MOAT_IDS_HEADER / 8; i++)
		w[i] = h[i];
	return w;
}

/* the reserved record w to the daemon, or given back when its bytes' load failed (err) */
static __always_inline void ids_commit(const struct moat_ids_record *r, __u64 *w, __u32 len,
				       long err)
{
	if (err) {
		bpf_ringbuf_discard(w, BPF_RB_NO_WAKEUP);
		return;
	}
	bpf_ringbuf_submit(w, ids_wake(r));
	count(MOAT_CNT_IDS_COPIED, len);
}

/* the verifier needs the length's bounds in the register: 1 + [0, max - 1] */
static __always_inline __u32 ids_bounded(__u32 len)
{
	__u32 last = len - 1;

	if (last > MOAT_IDS_MAX_BYTES - 1)
		last = MOAT_IDS_MAX_BYTES - 1;
	return last + 1;
}

/* The place + 1 of the byte a segment's urgent pointer names (Linux with tcp_stdurg 0, its
 * default: the byte before the pointer; a pointer of 0 names the segment's first byte), from the
 * record's place and the bytes ids_take cut off the segment's front (in r->urgent); 0 past the
 * most a direction copies. */
static __always_inline __u16 ids_urgent_place(const struct moat_ids_record *r, __u16 pointer)
{
	__u32 at = (__u32)r->offset + (pointer ? pointer - 1u : 0u);

	if (at < r->urgent)
		return 0;
	at -= r->urgent;
	return at < MOAT_IDS_MAX_BYTES ? (__u16)(at + 1) : 0;
}

/* The xdp program's copy of what moat_ids_take chose: from the frame into the record (and a
 * segment's urgent pointer), then to the ring buffer. Global functions, so the programs' own
 * frames do not grow. */
__noinline int moat_ids_xdp(struct xdp_md *ctx __arg_ctx, struct pkt *p)
{
	__u32 key = 0;
	__be16 pointer = 0;

	if (!p || !p->ids_len)
		return 0;
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return 0;
	if (r->flags & MOAT_IDS_URGENT) {
		if (bpf_xdp_load_bytes(ctx, p->l4_off + 18, &pointer, 2))
			pointer = 0;
		r->urgent = ids_urgent_place(r, bpf_ntohs(pointer));
	}
	__u32 len = ids_bounded(p->ids_len);
	if (ids_reserved(r, len)) {
		__u64 *w = ids_reserve(p, r, &len);
		if (w) {
			__u8 *to = (__u8 *)w + MOAT_IDS_HEADER;
			ids_commit(r, w, len, bpf_xdp_load_bytes(ctx, p->ids_off, to, len));
		}
		return 0;
	}
	if (bpf_xdp_load_bytes(ctx, p->ids_off, r->data, len))
		return 0;
	ids_submit(p, r, len);
	return 0;
}

/* the same for the tc programs; key: their ids_key */
__noinline int moat_ids_skb(struct __sk_buff *skb __arg_ctx, struct pkt *p, __u32 key)
{
	__be16 pointer = 0;

	if (!p || !p->ids_len)
		return 0;
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return 0;
	if (r->flags & MOAT_IDS_URGENT) {
		if (bpf_skb_load_bytes(skb, p->l4_off + 18, &pointer, 2))
			pointer = 0;
		r->urgent = ids_urgent_place(r, bpf_ntohs(pointer));
	}
	__u32 len = ids_bounded(p->ids_len);
	if (ids_reserved(r, len)) {
		__u64 *w = ids_reserve(p, r, &len);
		if (w) {
			__u8 *to = (__u8 *)w + MOAT_IDS_HEADER;
			ids_commit(r, w, len, bpf_skb_load_bytes(skb, p->ids_off, to, len));
		}
		return 0;
	}
	if (bpf_skb_load_bytes(skb, p->ids_off, r->data, len))
		return 0;
	ids_submit(p, r, len);
	return 0;
}

#endif /* MOAT_IDS_H */
