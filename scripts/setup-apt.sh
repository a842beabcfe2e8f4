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
# openssh-server is for the tests' own sshd: its system service must not start on install, nor at
# boot. A policy-rc.d that denies it is put in place only when the host has none of its own.
rc_policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$rc_policy" ]; then
  printf '#!/bin/sh\ncase "$1" in ssh|sshd) exit 101;; esac\nexit 0\n' >"$rc_policy"
  chmod 755 "$rc_policy"
  own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$rc_policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if printf '%s\n' "${missing[@]}" | grep -qx openssh-server; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  else
    update-rc.d ssh disable >/dev/null 2>&1 || true
  fi
fi
