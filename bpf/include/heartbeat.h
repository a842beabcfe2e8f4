/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* failure.daemon: allow (docs/policy.md, "failure"): the daemon writes a heartbeat every second;
 * once the latest is older than the grace period, the daemon is gone and the hooks let
 * everything through unjudged, until a daemon beats again. Under enforce (the default) the
 * heartbeat is never read. */
#ifndef MOAT_HEARTBEAT_H
#define MOAT_HEARTBEAT_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.h"

/* seconds without a heartbeat after which the daemon is gone (load-time knob) */
const volatile __u32 daemon_grace_s = 5;

/* 1 when the policy falls back to allow without a daemon and the daemon's heartbeat is late */
static __always_inline int daemon_gone(const struct moat_meta *m)
{
	__u32 zero = 0;

	if (!m->daemon_allow)
		return 0;
	__u64 *beat = bpf_map_lookup_elem(&heartbeat, &zero);
	if (!beat || !*beat)
		return 0;
	return bpf_ktime_get_ns() - *beat > (__u64)daemon_grace_s * 1000000000ull;
}

#endif /* MOAT_HEARTBEAT_H */
