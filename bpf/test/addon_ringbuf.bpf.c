// Addon tests only: each run emits one ring-buffer record carrying a global sequence number;
// a reservation failure is counted in a per-CPU counter, so emitted + dropped == runs.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* resized by the tests */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct seq_event {
	__u64 seq;
};

__u64 next_seq = 0;

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	__u64 seq = __sync_fetch_and_add(&next_seq, 1);
	struct seq_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	__u32 zero = 0;
	__u64 *dropped;

	if (!e) {
		dropped = bpf_map_lookup_elem(&drops, &zero);
		if (dropped)
			*dropped += 1;
		return XDP_PASS;
	}
	e->seq = seq;
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}
