/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IDS signatures (docs/policy.md "ids"): the packet programs copy the first bytes of each
 * direction of a flow (ids_config's `bytes`, in at most MOAT_IDS_MAX_PACKETS packets) to the
 * ids_records ring buffer, where the daemon matches the policy's signatures. The judge decides
 * what to copy (moat_ids_take, with the flow's conntrack entry, which keeps what the flow had
 * copied: no lookup of its own); the program copies it (moat_ids_xdp, moat_ids_skb), since only
 * it knows its context's type. A flow past its first bytes has MOAT_CT_IDS_DONE and costs one
 * flag test; without signatures nothing is looked up past the payload length. A full ring loses
 * the copy (counted), never the packet. */
#ifndef MOAT_IDS_H
#define MOAT_IDS_H

#include "maps.h"
#include "counters.h"
#include "packet.h"
#include "events.h"

/* a global function's argument that is the program's context (the kernel reads the tag) */
#ifndef __arg_ctx
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#endif

/* a flow whose first this many packets (both ways) went by unread is not read any more */
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
 * (known before any lookup, so a flow left out costs a few instructions a packet) */
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

static __always_inline int ids_direction_done(const struct moat_ids_flow *f, int d, __u16 want)
{
	return f->copied[d & 1] >= want || f->packets[d & 1] >= MOAT_IDS_MAX_PACKETS;
}

/* the program's key in ids_scratch: one record being built per hook */
static __always_inline __u32 ids_key(__u8 hook)
{
	return hook == MOAT_HOOK_XDP_INGRESS ? 0 : hook == MOAT_HOOK_TC_EGRESS ? 1 : 2;
}

/* Whether the ring has room now for a record of `len` bytes after the header (the kernel's own
 * 8-byte header, rounded up to 8): a flood of new flows fills the ring faster than the daemon
 * reads it, and a copy that cannot go in costs only this check, not the record's build and a
 * failed send under the ring's lock. Another cpu may take the room meanwhile: the send counts
 * that loss too. */
static __always_inline int ids_room(__u32 len)
{
	__u64 size = bpf_ringbuf_query(&ids_records, BPF_RB_RING_SIZE);
	__u64 used = bpf_ringbuf_query(&ids_records, BPF_RB_AVAIL_DATA);
	__u64 need = (8 + MOAT_IDS_HEADER + len + 7) & ~7ull;

	/* the kernel refuses a record that would fill the ring exactly */
	return used + need < size;
}

/* What of this packet to copy, judged with its flow's conntrack entry ct (in the table, or a new
 * one about to go in): the record's header into ids_scratch at the hook's key, the payload's
 * offset and length into p->ids_off and p->ids_len (0: nothing), the flow's progress in ct->ids.
 * at: the frame's length, the live slot (bit 32) and whether the packet's sender is the flow's
 * responder (bit 33), packed (a global function takes at most 5 arguments). A global function,
 * verified once; called from the judge, its frame counts in the judge's call chain (keep it
 * small: that chain is near the 512-byte limit); returns 0. */
__noinline int moat_ids_take(struct pkt *p, struct moat_ct *ct, const struct ev_from *from,
			     __u64 at)
{
	if (!p || !ct || !from)
		return 0;
	__u32 slot = (at >> 32) & 1;
	const struct moat_ids *cfg = bpf_map_lookup_elem(&ids_config, &slot);
	if (!cfg || !cfg->bytes)
		return 0;
	__u32 len = ids_payload(p, (__u32)at, &p->ids_off);
	if (!len || !ids_sampled(&p->t, cfg->sample))
		return 0;
	if ((ct->flags & MOAT_CT_IDS_DONE) || !ct->id)
		return 0;
	struct moat_ids_flow *f = &ct->ids;
	__u16 r_offset;
	/* read only if seen from its start, and only within its first packets */
	if ((ct->flags & MOAT_CT_MIDSTREAM) ||
	    ct->packets[0] + ct->packets[1] > MOAT_IDS_FLOW_PACKETS) {
		ids_done(ct);
		return 0;
	}
	__u16 want = cfg->bytes < MOAT_IDS_MAX_BYTES ? cfg->bytes : MOAT_IDS_MAX_BYTES;
	int d = (at >> 33) & 1;
	if (ids_direction_done(f, d, want)) {
		if (ids_direction_done(f, d ^ 1, want))
			ids_done(ct);
		return 0;
	}
	/* a direction that would start now in a flow older than the settings: its first bytes may
	 * have gone by unread (ids off, or the flow left out by another sample), so a copy would
	 * not start at the stream's start */
	if (!f->packets[d] && ct->created_ns < cfg->since_ns) {
		f->packets[d] = MOAT_IDS_MAX_PACKETS;
		return 0;
	}
	if (p->t.proto == IPPROTO_TCP) {
		/* in order only: a retransmission or a segment out of order is not copied */
		if (f->started[d] && p->seq != f->next_seq[d])
			return 0;
		f->next_seq[d] = p->seq + len;
		f->started[d] = 1;
	}
	__u32 take = want - f->copied[d];
	if (take > len)
		take = len;
	/* noted as copied whether or not the record fits: the daemon counts what it missed */
	r_offset = f->copied[d];
	f->copied[d] += take;
	f->packets[d] += 1;
	p->ids_noted = 1 + d;
	if (!ids_room(take)) {
		count(MOAT_CNT_IDS_LOST, take);
		return 0;
	}
	__u32 key = ids_key(from->hook);
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return 0;
	/* the local side: the sender of what leaves, the receiver of what comes in */
	int leaving = from->hook == MOAT_HOOK_TC_EGRESS;
	__builtin_memcpy(r->local, leaving ? p->t.src : p->t.dst, 16);
	__builtin_memcpy(r->remote, leaving ? p->t.dst : p->t.src, 16);
	r->local_port = leaving ? p->t.sport : p->t.dport;
	r->remote_port = leaving ? p->t.dport : p->t.sport;
	/* the judge set it to this packet's time */
	r->ts_ns = ct->last_ns;
	r->conn_id = ct->id;
	r->rule = ct->rule;
	r->generation = ct->generation;
	r->ifindex = from->ifindex;
	r->offset = r_offset;
	r->len = (__u16)take;
	r->family = p->t.family;
	r->protocol = p->t.proto;
	r->direction = ct->direction & 1;
	r->to_server = !d;
	r->hook = from->hook;
	r->verdict = ct->verdict;
	r->owner = ct->owner;
	p->ids_len = take;
	return 0;
}

/* the judge's call of moat_ids_take for a packet that passes: from_responder is whether its
 * sender is not the flow's initiator */
static __always_inline void ids_take(struct pkt *p, struct moat_ct *ct, const struct ev_from *from,
				     __u32 frame_len, __u32 slot, int from_responder)
{
	moat_ids_take(p, ct, from,
		      frame_len | (__u64)(slot & 1) << 32 | (__u64)(from_responder & 1) << 33);
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
	e->ids.started[d] = 0;
}

/* the record ids_take built, with `len` bytes from `off`, to the ring buffer */
static __always_inline void ids_submit(struct moat_ids_record *r, __u32 len)
{
	if (bpf_ringbuf_output(&ids_records, r, MOAT_IDS_HEADER + len, 0))
		count(MOAT_CNT_IDS_LOST, len);
	else
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

/* The xdp program's copy of what moat_ids_take chose: from the frame into the record, then to
 * the ring buffer. Global functions, so the programs' own frames do not grow. */
__noinline int moat_ids_xdp(struct xdp_md *ctx __arg_ctx, struct pkt *p)
{
	__u32 key = 0;

	if (!p || !p->ids_len)
		return 0;
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return 0;
	__u32 len = ids_bounded(p->ids_len);
	if (bpf_xdp_load_bytes(ctx, p->ids_off, r->data, len))
		return 0;
	ids_submit(r, len);
	return 0;
}

/* the same for the tc programs; key: their ids_key */
__noinline int moat_ids_skb(struct __sk_buff *skb __arg_ctx, struct pkt *p, __u32 key)
{
	if (!p || !p->ids_len)
		return 0;
	struct moat_ids_record *r = bpf_map_lookup_elem(&ids_scratch, &key);
	if (!r)
		return 0;
	__u32 len = ids_bounded(p->ids_len);
	if (bpf_skb_load_bytes(skb, p->ids_off, r->data, len))
		return 0;
	ids_submit(r, len);
	return 0;
}

#endif /* MOAT_IDS_H */
