#!/usr/bin/env bash
# Copy the generated CRDs (crds/*.yaml, written by `make crds`) into the Helm
# chart, where templates/crds.yaml renders them behind `crds.enabled`.
#
#   hack/sync-chart-crds.sh           copy crds/*.yaml -> helm/clone-operator/crds-files/
#   hack/sync-chart-crds.sh --check   fail (exit 1) when the chart's copies differ
#
# The copies are byte-for-byte: the chart adds its labels and the
# helm.sh/resource-policy annotation at render time, so a plain diff is the check.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/crds"
dst="$root/helm/clone-operator/crds-files"

usage() { echo "usage: $0 [--check]" >&2; exit 2; }

mode=sync
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) usage ;;
esac
[[ $# -le 1 ]] || usage

shopt -s nullglob
sources=("$src"/*.yaml)
if [[ ${#sources[@]} -eq 0 ]]; then
  echo "error: no CRDs in $src (run \`make crds\`)" >&2
  exit 1
fi

if [[ $mode == check ]]; then
  if ! diff -ru --exclude='.*' "$src" "$dst" --exclude=examples >/dev/null 2>&1; then
    echo "error: the chart's CRDs differ from crds/:" >&2
    diff -ru --exclude='.*' --exclude=examples "$src" "$dst" >&2 || true
    echo "run hack/sync-chart-crds.sh (after \`make crds\`) and commit the result" >&2
    exit 1
  fi
  echo "chart CRDs are in sync with crds/ (${#sources[@]} files)"
  exit 0
fi

mkdir -p "$dst"
# Remove copies whose source is gone, then copy the current set.
for f in "$dst"/*.yaml; do
  [[ -e "$src/$(basename "$f")" ]] || rm -v "$f"
done
cp "${sources[@]}" "$dst"/
echo "synced ${#sources[@]} CRDs into ${dst#"$root"/}"
