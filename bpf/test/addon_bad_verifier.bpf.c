// Addon tests only: compiles cleanly but must be rejected by the verifier (packet read
// without a bounds check), so the test can check that the verifier log reaches JS.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int bad_unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[12] == 0x08 ? XDP_DROP : XDP_PASS;
}
