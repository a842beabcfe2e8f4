// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The kernel splice (docs/l7-splice.md): once the relay has decided a connection, the bytes each
 * of its two sockets receives go straight to the other's egress, never through user space. The
 * verdict program is attached to splice_socks at load (src/datapath/splice.ts). Part of
 * moat.bpf.o: built by bpf/moat.bpf.c, which includes it. */
#include "counters.h"

SEC("sk_skb/stream_verdict")
int moat_splice_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct moat_splice_peer *p = bpf_map_lookup_elem(&splice_peers, &cookie);

	/* user space writes the peers only after both sockets are targets: never seen */
	if (!p)
		return SK_PASS;
	/* a bare FIN: sent on as an empty skb, the peer's psock would take it for a broken pipe
	 * and fail the peer; user space passes the FIN on with shutdown() once the bytes are out */
	if (!skb->len)
		return SK_DROP;
	__sync_fetch_and_add(&p->bytes, skb->len);
	count(MOAT_CNT_SPLICED, skb->len);
	return bpf_sk_redirect_hash(skb, &splice_targets, &p->peer, 0);
}
