#!/usr/bin/env bash
# `make deb`: the Debian package of what `make build` made, by dpkg-buildpackage (debhelper) from
# a staging directory in build/deb (its outputs land beside it, never outside the repository),
# then checked by lintian: an error or a warning fails the build (the overrides in
# packaging/debian/moat.lintian-overrides say why each is accepted).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${MOAT_VERSION:?}
out=$root/build/deb
stage=$out/moat-$version
rm -rf "$out" && mkdir -p "$stage"
cp -a "$root/packaging/debian" "$stage/"
# the changelog is the version package.json states
{
  echo "moat ($version) bookworm; urgency=medium"
  echo
  echo "  * moat $version."
  echo
  echo " -- moat maintainers <moat@example.org>  $(date -R -d "@$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)")"
} >"$stage/debian/changelog"
cd "$stage"
MOAT_SRC=$root NODE_BIN=${NODE_BIN:-} dpkg-buildpackage -b -us -uc --no-sign >"$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log" >&2; exit 1; }
deb=$out/moat_${version}_amd64.deb
[ -f "$deb" ] || { echo "moat deb: $deb was not made (build/deb/build.log)" >&2; exit 1; }
lintian --fail-on error,warning --tag-display-limit 0 "$deb"
echo "moat deb: $deb"
