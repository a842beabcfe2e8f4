#!/usr/bin/env bash
# The tests run programs as an unprivileged user (nobody: the hostile local user, users that
# process rules match): the checkout and its Node must be reachable by others. A checkout under a
# closed home (/root is 0700 on Debian) fails those tests with errors that do not say why, so say
# it here first.
set -u
root=$1 node=$2
if ! setpriv --reuid=65534 --regid=65534 --clear-groups "$node" -e 0 >/dev/null 2>&1 ||
  ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$root/package.json"; then
  dir=$root
  while [ "$dir" != / ]; do
    perms=$(stat -c %A "$dir")
    [ "${perms:9:1}" = x ] || [ "${perms:9:1}" = t ] || closed=$dir
    dir=$(dirname "$dir")
  done
  echo "moat test: the tests run programs as the user nobody, who cannot reach $root${closed:+ ($closed is closed to others)}; move the checkout (e.g. under /srv or /opt) or open the directory: chmod o+x ${closed:-<each parent>}" >&2
  exit 1
fi
