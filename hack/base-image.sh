#!/usr/bin/env bash
# Make (or reuse) the Debian base image of the operator image from Debian's own
# packages, for machines that cannot pull from an image registry.
#
#   debootstrap --variant=minbase <suite> + python3 (+ venv, ca-certificates; or
#   BASE_PACKAGES),
#   trimmed (apt lists, docs, man pages, locales), then `docker import`.
#
# The image is tagged clone-operator-base:<key>, where <key> hashes every input
# (this script, the suite, the package list, the mirror, the architecture), so a
# changed input makes a new base and an unchanged one is reused (no work at all).
# Prints the image reference on stdout; progress goes to stderr.
#
# Environment: DOCKER (client command, default docker), BASE_SUITE (bookworm),
# DEBIAN_MIRROR (default: the first Debian mirror in /etc/apt/sources.list*),
# BASE_PACKAGES (default python3,python3-venv,ca-certificates: the operator's; the
# mover's image asks for rsync,stunnel4).
set -euo pipefail
docker=${DOCKER:-docker}
suite=${BASE_SUITE:-bookworm}
packages=${BASE_PACKAGES:-python3,python3-venv,ca-certificates}
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)

die() { echo "base-image.sh: $*" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # deb822 (`URIs: http://…/debian`) or one-line (`deb http://…/debian suite main`).
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -nE 's#^URIs:[[:space:]]*(\S+/debian)/?$#\1#p; s#^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(\S+/debian)/?[[:space:]].*#\2#p' |
    head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

key=$( { cat "$0"; echo "$suite $packages $mirror $arch"; } | sha256sum | cut -c1-12)
ref="clone-operator-base:$key"
if $docker image inspect "$ref" >/dev/null 2>&1; then
  echo "$ref"
  exit 0
fi

command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
echo "base-image.sh: debootstrap $suite from $mirror (+ $packages)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
# Trim what a container never needs; dpkg's own database stays (scanners read it).
rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/var/cache/apt/* "$work/root"/var/cache/debconf/*-old \
  "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/* "$work/root"/usr/share/info/* \
  "$work/root"/usr/share/locale/* "$work/root"/var/log/* "$work/root"/tmp/*
find "$work/root/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
tar --numeric-owner -C "$work/root" -c . |
  $docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$ref" >/dev/null
echo "base-image.sh: $ref made in $((SECONDS - start)) s" >&2
echo "$ref"
