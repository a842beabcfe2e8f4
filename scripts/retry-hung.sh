#!/usr/bin/env bash
# retry-hung.sh TRIES SECONDS COMMAND...: runs COMMAND; if it is still running after SECONDS it
# is killed and run again, at most TRIES times. A failure (any other exit) is final.
# Why: on this kernel a BPF_PROG_TEST_RUN or map update now and then spins in the kernel for
# minutes (docs/datapath.md, "Known kernel livelock"); a hang is not a verdict on the code.
set -u
tries=$1 limit=$2
shift 2
for i in $(seq 1 "$tries"); do
  timeout -k 10 "$limit" "$@"
  rc=$?
  if [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]; then exit "$rc"; fi
  echo "moat test: still running after ${limit}s (try $i of $tries), killed: $*" >&2
  # veths of the XDP anchor of the killed run (test/helpers/xdp-anchor.ts)
  for l in $(ip -o link show | grep -o 'mtx[0-9]*x[0-9]*a' | sort -u); do ip link del "$l" 2>/dev/null; done
done
echo "moat test: hung $tries times: $*" >&2
exit 1
