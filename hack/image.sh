#!/usr/bin/env bash
# `make image`: build the operator image with the repository's Dockerfile.
#
#   hack/image.sh <repository:tag>
#   IMAGE_KIND=mover hack/image.sh <repository:tag>   (the data mover: mover/Dockerfile)
#
# BASE_IMAGE empty (the default): the base is made from Debian's packages by
# hack/base-image.sh (cached, keyed by its inputs), so no image registry is
# needed. BASE_IMAGE=python:3.11-slim-bookworm (or any Debian-based image with
# python3 and venv) uses that instead.
#
# pip inside the build trusts the host's CA bundle (a TLS-inspecting proxy's CA
# may live only there): it is handed to the build stage as a BuildKit secret,
# so it never lands in a layer. When no Docker engine answers and this is root
# on a machine with Debian's dockerd, one is started (log: $CACHE/logs/dockerd.log).
# Prints the image ID on the last line of stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ref=${1:?usage: image.sh <repository:tag>}
cache=${CLONE_OPERATOR_CACHE:-$HOME/.cache/clone-operator}

die() { echo "image.sh: $*" >&2; exit 1; }

# A client that builds with BuildKit: Docker >= 23 with buildx, or an older
# client (e.g. Debian's docker.io 20.10) with DOCKER_BUILDKIT=1.
docker=""
while read -r candidate; do
  [ -n "$candidate" ] || continue
  if "$candidate" buildx version >/dev/null 2>&1; then docker=$candidate; break; fi
  major=$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
  if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then docker=$candidate; break; fi
done < <(type -ap docker; echo /usr/bin/docker)
[ -n "$docker" ] || die "no Docker client that can build with BuildKit (install docker.io, or Docker with buildx)"
export DOCKER_BUILDKIT=1 DOCKER="$docker"

if ! "$docker" info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null; then
    mkdir -p "$cache/logs"
    echo "image.sh: starting dockerd (log: $cache/logs/dockerd.log)" >&2
    setsid dockerd >>"$cache/logs/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 60); do "$docker" info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  "$docker" info >/dev/null 2>&1 ||
    die "no Docker engine is reachable (apt-get install docker.io, then run dockerd as root)"
fi

start=$SECONDS
base=${BASE_IMAGE:-}
secret=()
case ${IMAGE_KIND:-operator} in
operator)
  [ -n "$base" ] || base=$("$root/hack/base-image.sh")
  for ca in ${PIP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}; do
    [ -s "$ca" ] && secret=(--secret "id=pip-ca,src=$ca")
  done
  build=(--build-arg "PYTHON_IMAGE=$base" "$root")
  ;;
mover) # mover/Dockerfile: rsync and stunnel from the base's packages, nothing downloaded
  [ -n "$base" ] || base=$(BASE_PACKAGES=rsync,stunnel4 "$root/hack/base-image.sh")
  build=(--build-arg "MOVER_BASE=$base" "$root/mover")
  ;;
*) die "IMAGE_KIND=${IMAGE_KIND}: expected operator or mover" ;;
esac
"$docker" build --quiet "${secret[@]}" --tag "$ref" "${build[@]}" >/dev/null
size=$("$docker" image inspect --format '{{.Size}}' "$ref")
echo "image.sh: $ref on $base: $((size / 1000000)) MB, built in $((SECONDS - start)) s" >&2
"$docker" image inspect --format '{{.Id}}' "$ref"
