#!/usr/bin/env bash
# Installs the Debian packages moat needs to build, run and test (scripts/apt-{build,run,test}.txt)
# that are not installed yet.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t wanted < <(cat apt-build.txt apt-run.txt apt-test.txt | grep -vE "^\s*(#|$)")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "moat set-up: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The servers among these (sshd, dockerd, prometheus, unbound, haproxy, nats-server) are for the
# tests, which start their own: none of their system services may start on install (a sysvinit
# script could also fail there, as docker's does where `ulimit -n` is capped, and fail the
# install), nor at boot. A policy-rc.d that denies every service is put in place only when the
# host has none of its own.
rc_policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$rc_policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$rc_policy"
  chmod 755 "$rc_policy"
  own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$rc_policy"' EXIT
apt_log=$(mktemp)
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
  tail -n 40 "$apt_log" >&2
  echo "moat set-up: apt-get install failed (its last lines above); packages left half-installed:" >&2
  dpkg --audit >&2 || true
  rm -f "$apt_log"
  exit 1
fi
rm -f "$apt_log"
# services of the packages installed now stay off at boot
for unit in ssh:openssh-server docker:docker.io prometheus:prometheus unbound:unbound \
  haproxy:haproxy nats-server:nats-server; do
  service=${unit%%:*} package=${unit#*:}
  printf '%s\n' "${missing[@]}" | grep -qx "$package" || continue
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$service.service" >/dev/null 2>&1 || true
    # ssh and docker are also started by their sockets
    systemctl disable --now "$service.socket" >/dev/null 2>&1 || true
  else
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done
