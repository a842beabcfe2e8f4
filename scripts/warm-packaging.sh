#!/usr/bin/env bash
# `make test` runs this in the background while the property and unit tiers run: it makes what the
# two packaging tests need (the .deb, the Debian root it is installed into, the container image)
# under the packaging lock they take, so they find it made instead of downloading Debian's
# packages then. A failure here is only logged: the tests make it again and report what failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec 9>"$root/build/.packaging.lock"
flock 9
make -C "$root" --no-print-directory deb image && "$root/scripts/deb-root.sh"
