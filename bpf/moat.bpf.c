// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* moat.bpf.o, the object moat enforces with: every program of moat, one source per hook family
 * in progs/, compiled as one unit so that all of them share every map (include/maps.h), which a
 * restarted daemon adopts by name.
 * - progs/packet.bpf.c: XDP and TC ingress, TC egress: every packet, judged by the tables;
 * - progs/sock.bpf.c: the socket hooks judge a local process's connect() and sendmsg();
 * - progs/post_route.bpf.c: a connection's first packet again, when it leaves by another
 *   interface than the route mirror predicted;
 * - progs/redirect.bpf.c: a redirected client sees its original destination;
 * - progs/accept.bpf.c: the connections a local socket receives, judged with their owner;
 * - progs/splice.bpf.c: a decided relay connection's bytes, from one socket to its peer;
 * - progs/exe.bpf.c: each process's executable, recorded at exec and fork (process rules).
 * The headers in include/ hold the logic the programs share; no program lives in a header. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "moat_abi.h"
#include "judge.h"
#include "reset.h"
#include "bench.h"

/* each family after the logic it needs: the order the object's code has always had */
#include "progs/post_route.bpf.c"
#include "progs/redirect.bpf.c"
#include "progs/sock.bpf.c"
#include "progs/accept.bpf.c"
#include "progs/splice.bpf.c"
#include "progs/exe.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#include "progs/packet.bpf.c"
