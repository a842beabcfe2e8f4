#!/usr/bin/env bash
# Checks what moat cannot work without; prints one sentence per missing thing.
set -u
fail=0
say() { echo "moat: $*" >&2; fail=1; }

[ "$(id -u)" = 0 ] || say "must run as root (eBPF loading and network namespaces need it); run with sudo."
[ -r /sys/kernel/btf/vmlinux ] || say "the kernel has no BTF (/sys/kernel/btf/vmlinux is missing); boot a kernel built with CONFIG_DEBUG_INFO_BTF=y."
kv=$(uname -r | sed -E 's/^([0-9]+)\.([0-9]+).*/\1 \2/')
set -- $kv
if [ "${1:-0}" -lt 6 ] || { [ "${1:-0}" -eq 6 ] && [ "${2:-0}" -lt 1 ]; }; then
  say "kernel $(uname -r) is too old; moat needs Linux 6.1 or newer (6.6+ for tcx links)."
fi
command -v apt-get >/dev/null || say "apt-get not found; moat's set-up targets Debian 12 (install the packages in scripts/apt-{build,run,test}.txt by hand elsewhere)."
exit $fail
