/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The wakeups of the rings the daemon reads (events, flow records, QUIC datagrams, ids copies).
 * A record that finds its reader caught up wakes it by default: the kernel's irq work, a
 * self-interrupt that costs the sending cpu several microseconds (~5-6 in a VM), many times the
 * record. Here each ring wakes its reader at most once in RING_WAKE_NS; a record sent without a
 * wakeup is read by the reader's next look, which the daemon takes a millisecond after any record
 * it read, again while records keep coming (src/datapath/looking-ring.ts). RING_WAKE_NS is half of
 * that: a record sent just before a window closes is still read by a look of the reader's. */
#ifndef MOAT_RING_WAKE_H
#define MOAT_RING_WAKE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define RING_WAKE_NS 500000ull

/* the time of each ring's last wakeup (races between cpus only move it) */
static __u64 events_woken_ns, flows_woken_ns, quic_woken_ns, ids_woken_ns;

/* the ring's flags for a record sent now (the clock read at the sending, or a time read in the
 * same run: a record's own time may be older, an event's say, but an ids copy's is its packet's,
 * ids.h's ids_wake), `woken` the ring's last wakeup */
static __always_inline __u64 ring_wake(__u64 *woken, __u64 now)
{
	if (now - *woken < RING_WAKE_NS)
		return BPF_RB_NO_WAKEUP;
	*woken = now;
	return 0;
}

#endif
