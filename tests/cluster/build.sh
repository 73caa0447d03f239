#!/usr/bin/env bash
# Build the local control plane's binaries from the Go module proxy, stamped
# with their real versions, into a cache outside the repository keyed by
# version: $CLONE_OPERATOR_CACHE/bin/<component>-<version>/. Only missing
# binaries are built, so only the first run pays.
#
# Usage: build.sh [component ...]   (kubernetes etcd kwok helm snapshotter csi node;
# default: all but node, which only the real node needs: kubelet, kube-proxy, a
# pause binary and the cluster DNS, a CoreDNS with three plugins from tests/cluster/dns)
# snapshotter: snapshot-controller, csi-snapshotter and the snapshot CRDs;
# csi: csi-sanity and the test CSI driver's Python stubs (generated from csi.proto).
# Prints nothing but progress; every build logs to $CACHE/logs/<component>.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${CLONE_OPERATOR_CACHE:-$HOME/.cache/clone-operator}
mkdir -p "$cache/logs"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: install Go >= 1.24 (https://go.dev/doc/install or the distribution's golang package)."
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "${go_minor:-0}" -ge 24 ] 2>/dev/null || die "Go $(go env GOVERSION) is too old: the Kubernetes $KUBE_VERSION build needs Go >= 1.24 (kwok $KWOK_VERSION needs 1.26)."

export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
export GOFLAGS=

check_gomod() { # name module version
  grep -qE "^(require)?[[:space:]]*$2 $3( // indirect)?\$" "$here/gomod/$1/go.mod" ||
    die "tests/cluster/gomod/$1/go.mod does not pin $2 $3 from versions.env: run tests/cluster/gomod.sh $1"
}

run_logged() { # component command...
  local comp=$1; shift
  local log="$cache/logs/$comp.log"
  echo "  building $comp (log: $log)"
  local start=$SECONDS
  if ! "$@" >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "building $comp failed; the full log is $log"
  fi
  echo "  built $comp in $((SECONDS - start)) s"
}

kube_ldflags() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f="$f -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    f="$f -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$f"
}

build_kubernetes() {
  local out="$cache/bin/kubernetes-$KUBE_VERSION"
  local missing=""
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$out/$c" ] || missing="$missing $c"
  done
  [ -z "$missing" ] && return 0
  check_gomod kubernetes k8s.io/kubernetes "$KUBE_VERSION"
  mkdir -p "$out.tmp"
  for c in $missing; do
    mkdir -p "$out.tmp"
    run_logged "$c" bash -c "cd '$here/gomod/kubernetes' && go build -trimpath -ldflags '$(kube_ldflags)' -o '$out.tmp/$c' k8s.io/kubernetes/cmd/$c"
    mkdir -p "$out" && mv "$out.tmp/$c" "$out/$c"
  done
}

build_node() {
  local out="$cache/bin/kubernetes-$KUBE_VERSION"
  local missing=""
  for c in kubelet kube-proxy; do
    [ -x "$out/$c" ] || missing="$missing $c"
  done
  if [ -n "$missing" ]; then
    check_gomod kubernetes k8s.io/kubernetes "$KUBE_VERSION"
    mkdir -p "$out.tmp"
    for c in $missing; do
      run_logged "$c" bash -c "cd '$here/gomod/kubernetes' && go build -trimpath -ldflags '$(kube_ldflags)' -o '$out.tmp/$c' k8s.io/kubernetes/cmd/$c"
      mkdir -p "$out" && mv "$out.tmp/$c" "$out/$c"
    done
  fi
  # The sandbox ("pause") container's binary: registry.k8s.io is out of reach,
  # so it is built here, keyed by its source.
  local key
  key=$(cat "$here/pause/go.mod" "$here/pause/main.go" | sha256sum | cut -c1-12)
  out="$cache/bin/pause-$key"
  [ -x "$out/pause" ] && { build_dns; return 0; }
  mkdir -p "$out.tmp"
  run_logged pause bash -c "cd '$here/pause' && go build -trimpath -ldflags '-s -w' -o '$out.tmp/pause' ."
  mkdir -p "$out" && mv "$out.tmp/pause" "$out/"; rmdir "$out.tmp"
  build_dns
}

build_dns() {
  # Keyed by its module files, like the pause binary (tests/cluster/realnode.py reads the key).
  local key out
  key=$(cat "$here/dns/go.mod" "$here/dns/go.sum" "$here/dns/main.go" | sha256sum | cut -c1-12)
  out="$cache/bin/dns-$key"
  [ -x "$out/coredns" ] && return 0
  grep -q "^require github.com/coredns/coredns $COREDNS_VERSION\$" "$here/dns/go.mod" ||
    die "tests/cluster/dns/go.mod does not pin CoreDNS $COREDNS_VERSION from versions.env: run tests/cluster/gomod.sh dns"
  mkdir -p "$out.tmp"
  run_logged coredns bash -c "cd '$here/dns' && go build -trimpath -ldflags '-s -w' -o '$out.tmp/coredns' ."
  mkdir -p "$out" && mv "$out.tmp/coredns" "$out/"; rmdir "$out.tmp"
}

build_etcd() {
  local out="$cache/bin/etcd-$ETCD_VERSION"
  [ -x "$out/etcd" ] && [ -x "$out/etcdctl" ] && return 0
  check_gomod etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  mkdir -p "$out.tmp"
  run_logged etcd bash -c "cd '$here/gomod/etcd' && go build -trimpath -ldflags '-s -w' -o '$out.tmp/etcd' go.etcd.io/etcd/server/v3 && go build -trimpath -ldflags '-s -w' -o '$out.tmp/etcdctl' go.etcd.io/etcd/etcdctl/v3"
  mkdir -p "$out" && mv "$out.tmp/etcd" "$out.tmp/etcdctl" "$out/"; rmdir "$out.tmp"
}

build_kwok() {
  local out="$cache/bin/kwok-$KWOK_VERSION"
  [ -x "$out/kwok" ] && [ -x "$out/kwokctl" ] && return 0
  check_gomod kwok sigs.k8s.io/kwok "$KWOK_VERSION"
  mkdir -p "$out.tmp"
  local ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION"
  run_logged kwok bash -c "cd '$here/gomod/kwok' && go build -trimpath -ldflags '$ld' -o '$out.tmp/kwok' sigs.k8s.io/kwok/cmd/kwok && go build -trimpath -ldflags '$ld' -o '$out.tmp/kwokctl' sigs.k8s.io/kwok/cmd/kwokctl"
  mkdir -p "$out" && mv "$out.tmp/kwok" "$out.tmp/kwokctl" "$out/"; rmdir "$out.tmp"
}

build_helm() {
  local out="$cache/bin/helm-$HELM_VERSION"
  [ -x "$out/helm" ] && return 0
  check_gomod helm helm.sh/helm/v3 "$HELM_VERSION"
  mkdir -p "$out.tmp"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  run_logged helm bash -c "cd '$here/gomod/helm' && go build -trimpath -ldflags '$ld' -o '$out.tmp/helm' helm.sh/helm/v3/cmd/helm"
  mkdir -p "$out" && mv "$out.tmp/helm" "$out/"; rmdir "$out.tmp"
}

build_snapshotter() {
  local out="$cache/bin/snapshotter-$SNAPSHOTTER_VERSION"
  [ -x "$out/snapshot-controller" ] && [ -x "$out/csi-snapshotter" ] && [ -d "$out/crd" ] && return 0
  local s=github.com/kubernetes-csi/external-snapshotter
  check_gomod snapshotter "$s/v8" "$SNAPSHOTTER_VERSION"
  check_gomod snapshotter "$s/client/v8" "$SNAPSHOTTER_VERSION"
  mkdir -p "$out.tmp"
  local ld="-s -w -X main.version=$SNAPSHOTTER_VERSION"
  run_logged snapshotter bash -c "cd '$here/gomod/snapshotter' && go build -trimpath -ldflags '$ld' -o '$out.tmp/snapshot-controller' $s/v8/cmd/snapshot-controller && go build -trimpath -ldflags '$ld' -o '$out.tmp/csi-snapshotter' $s/v8/cmd/csi-snapshotter"
  # The CRDs, as released with the client module (its config/crd), from the module cache.
  local dir
  dir=$(cd "$here/gomod/snapshotter" && go list -m -f '{{.Dir}}' "$s/client/v8")
  rm -rf "$out.tmp/crd" && mkdir -p "$out.tmp/crd"
  cp "$dir"/config/crd/*.storage.k8s.io_*.yaml "$out.tmp/crd/" && chmod u+w "$out.tmp/crd"/*.yaml
  mkdir -p "$out" && rm -rf "$out/crd" && mv "$out.tmp"/* "$out/"; rmdir "$out.tmp"
}

build_csi() {
  local out="$cache/bin/csi-$CSI_SPEC_VERSION-$CSI_TEST_VERSION"
  check_gomod csi-test github.com/kubernetes-csi/csi-test/v5 "$CSI_TEST_VERSION"
  check_gomod csi-test github.com/container-storage-interface/spec "$CSI_SPEC_VERSION"
  if [ ! -x "$out/csi-sanity" ]; then
    mkdir -p "$out.tmp"
    run_logged csi-sanity bash -c "cd '$here/gomod/csi-test' && go build -trimpath -ldflags '-s -w' -o '$out.tmp/csi-sanity' github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity"
    mkdir -p "$out" && mv "$out.tmp/csi-sanity" "$out/"; rmdir "$out.tmp"
  fi
  # The driver's gRPC stubs, keyed by the generator's version too (its runtime checks them).
  local py=${CLONE_OPERATOR_PYTHON:-python3} gen
  gen=$("$py" -c 'import grpc_tools, importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null) ||
    die "grpcio-tools is missing from $py: run make venv (the dev extra has it)"
  local stubs="$out/python-$gen"
  [ -f "$stubs/csi_pb2_grpc.py" ] && [ -f "$stubs/pluginregistration_pb2_grpc.py" ] && return 0
  # csi.proto from the pinned spec; the kubelet's plugin registration API from the
  # pinned Kubernetes' k8s.io/kubelet (both from the Go module cache).
  local spec kubelet
  spec=$(cd "$here/gomod/csi-test" && go list -m -f '{{.Dir}}' github.com/container-storage-interface/spec)
  kubelet=$(cd "$here/gomod/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubelet)
  rm -rf "$stubs.tmp" && mkdir -p "$stubs.tmp"
  cp "$spec/csi.proto" "$stubs.tmp/"
  cp "$kubelet/pkg/apis/pluginregistration/v1/api.proto" "$stubs.tmp/pluginregistration.proto"
  run_logged csi-stubs bash -c "cd '$stubs.tmp' && '$py' -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. csi.proto pluginregistration.proto"
  rm "$stubs.tmp"/*.proto && rm -rf "$stubs" && mv "$stubs.tmp" "$stubs"
}

for comp in ${*:-kwok helm etcd kubernetes snapshotter csi}; do
  "build_$comp"
done
