#!/usr/bin/env bash
# A Debian 12 root holding the run-time dependencies of build/deb's package and nothing else, as a
# tarball (mmdebstrap, variant apt), for the package test to install the .deb into. Cached in
# .tools/debroot keyed by the package list and the mirror: only the first run downloads.
# Prints the tarball's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${MOAT_VERSION:?}
deb=$root/build/deb/moat_${version}_amd64.deb
mirror=${MOAT_MIRROR:-http://deb.debian.org/debian}
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/[ (].*//' | grep . | sort | paste -sd,)
key=$(printf 'apt %s %s' "$depends" "$mirror" | sha256sum | cut -c1-16)
cache=$root/.tools/debroot
tarball=$cache/bookworm-$key.tar

if [ ! -f "$tarball" ]; then
  mkdir -p "$cache"
  tmp=$tarball.$$.tmp
  trap 'rm -f "$tmp"' EXIT
  mmdebstrap --quiet --variant=apt --include="$depends" --format=tar bookworm "$tmp" "$mirror" >&2
  mv "$tmp" "$tarball"
fi
echo "$tarball"
