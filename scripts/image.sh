#!/usr/bin/env bash
# `make image`: moat's OCI image, made here with Debian's tools and no registry. mmdebstrap makes a
# minimal Debian 12 root (essential packages and the .deb's run-time dependencies, no docs, man
# pages or locales) and installs build/deb's package into it; umoci makes that root the image's
# one layer and sets its entrypoint; skopeo writes it as a docker archive for `docker load`.
# The image is cached in .tools/image keyed by the .deb's content and this script: the same
# package never builds twice.
# Output: build/image/moat-image.tar (`docker load -i`, tag moat:VERSION) and
# build/image/oci (the OCI layout, tag VERSION, for `skopeo copy` to a registry).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${MOAT_VERSION:?}
deb=$root/build/deb/moat_${version}_amd64.deb
mirror=${MOAT_MIRROR:-http://deb.debian.org/debian}
out=$root/build/image
cache=$root/.tools/image
key=$(cat "$deb" "$0" | sha256sum | cut -c1-16)
cached=$cache/moat-$version-$key
mkdir -p "$out"

if [ ! -f "$cached/moat-image.tar" ]; then
  work=$(mktemp -d /var/tmp/moat-image.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/[ (].*//' | grep . | paste -sd,)
  cp "$deb" "$work/moat.deb"
  # variant essential: no apt, no init; the daemon's dependencies come from the .deb's Depends
  mmdebstrap --quiet --variant=essential --include="$depends" --format=tar \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook="cp '$work/moat.deb' \"\$1/moat.deb\"" \
    --customize-hook='chroot "$1" dpkg -i /moat.deb' \
    --customize-hook='rm -f "$1/moat.deb"; rm -rf "$1"/var/cache/* "$1"/var/log/*.log "$1"/var/lib/moat/*' \
    bookworm "$work/rootfs.tar" "$mirror"

  # the policy comes from a mount (a ConfigMap); /sys/fs/bpf is no volume: pins belong in the
  # node's bpffs, mounted by the runtime, never in a directory the runtime would make up
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:$version"
  umoci raw add-layer --image "$work/oci:$version" "$work/rootfs.tar"
  umoci config --image "$work/oci:$version" \
    --config.entrypoint=/usr/bin/moat \
    --config.cmd=run --config.cmd=--policy --config.cmd=/etc/moat/policy.yaml \
    --config.env=PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    --config.workingdir=/ \
    --config.volume=/var/lib/moat \
    --config.label=org.opencontainers.image.title=moat \
    --config.label=org.opencontainers.image.version="$version" \
    --author='moat maintainers <moat@example.org>'
  umoci gc --layout "$work/oci"
  skopeo copy --quiet "oci:$work/oci:$version" "docker-archive:$work/moat-image.tar:moat:$version"

  rm -rf "$cache" && mkdir -p "$cached"
  mv "$work/oci" "$work/moat-image.tar" "$cached/"
fi
rm -rf "$out/oci" "$out/moat-image.tar"
cp -a "$cached/oci" "$out/oci"
ln -f "$cached/moat-image.tar" "$out/moat-image.tar" 2>/dev/null || cp "$cached/moat-image.tar" "$out/"
echo "moat image: $out/moat-image.tar (moat:$version, $(du -m "$out/moat-image.tar" | cut -f1) MB)"
