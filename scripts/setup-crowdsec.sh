#!/usr/bin/env bash
# CrowdSec's local API, for the test of moat's bouncer against the real thing: the Debian
# package's binaries unpacked into .tools/crowdsec, not installed. Installing it runs a
# post-install step that registers with CrowdSec's central API online; without the internet
# that fails, and dpkg with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/crowdsec"
[ -x "$dest/usr/bin/crowdsec" ] && [ -x "$dest/usr/bin/cscli" ] && exit 0
echo "moat set-up: unpacking Debian's crowdsec into .tools/crowdsec (for the tests)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# the package lists may be missing or stale when every apt package was already there
apt-get download crowdsec >/dev/null 2>&1 || { apt-get update -qq && apt-get download crowdsec >/dev/null 2>&1; }
rm -rf "$dest.new"
dpkg-deb -x crowdsec_*.deb "$dest.new"
rm -rf "$dest"
mv "$dest.new" "$dest"
