#!/usr/bin/env bash
# `make e2e-kind`: the e2e suite against a real kind cluster, with the operator
# running in-cluster from its image, installed by the Helm chart.
#
#   1. kind cluster with region-labelled workers (hack/kind/cluster.yaml)
#   2. csi-driver-host-path (+ the snapshot CRDs and controller it needs): a CSI
#      driver that supports volume cloning, as the default StorageClass
#   3. docker build of the operator image, `kind load` into the nodes
#   4. helm install of helm/clone-operator with that image; helm test
#   5. pytest -m e2e with CLONE_OPERATOR_E2E_KUBECONFIG pointing at the cluster
#
# Needs: docker (a running engine), kind, kubectl, helm, git, and the repo's .venv.
# Environment knobs:
#   KIND_CLUSTER        cluster name (default clone-operator-e2e)
#   KIND_NODE_IMAGE     node image, e.g. kindest/node:v1.34.0 (default: kind's own)
#   KEEP_CLUSTER=1      do not delete the cluster at the end
#   HOSTPATH_VERSION    csi-driver-host-path tag (default v1.17.0)
#   SNAPSHOTTER_VERSION external-snapshotter tag (default v8.2.0)
#   PYTEST_ARGS         extra pytest arguments
#
# It cannot run on machines without a Docker engine (e.g. the development
# containers of this project); CI runs it: .github/workflows/e2e-kind.yaml.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cluster="${KIND_CLUSTER:-clone-operator-e2e}"
hostpath_version="${HOSTPATH_VERSION:-v1.17.0}"
snapshotter_version="${SNAPSHOTTER_VERSION:-v8.2.0}"
image_repo="clone-operator"
image_tag="e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)"
namespace="clone-operator-system"
release="clone-operator"
work="$root/.artifacts/e2e-kind"
kubeconfig="$work/kubeconfig"

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "e2e-kind: $*" >&2; exit 1; }

# --- preflight: fail early and specifically -----------------------------------
for tool in docker kind kubectl helm git; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (needed: docker kind kubectl helm git)"
done
docker info >/dev/null 2>&1 || die "no Docker engine is reachable (docker info failed)"
[[ -x .venv/bin/python ]] || die ".venv is missing: run \`make venv\` first"
# The shared e2e fixtures (tests/conftest.py) must know how to target an
# external cluster instead of starting the local kwok one.
grep -q CLONE_OPERATOR_E2E_KUBECONFIG tests/conftest.py \
  || die "tests/conftest.py does not honour CLONE_OPERATOR_E2E_KUBECONFIG yet; the suite would start the local kwok cluster instead of using kind"

mkdir -p "$work"

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "failed (exit $rc); collecting diagnostics into $work"
    kubectl --kubeconfig "$kubeconfig" get all,pvc,cloning -A -o wide >"$work/objects.txt" 2>&1 || true
    kubectl --kubeconfig "$kubeconfig" -n "$namespace" logs "deployment/$release" >"$work/operator.log" 2>&1 || true
    kind export logs "$work/kind-logs" --name "$cluster" >/dev/null 2>&1 || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  else
    echo "kept cluster $cluster (kubeconfig: $kubeconfig)"
  fi
  exit $rc
}
trap cleanup EXIT

# --- 1. cluster ----------------------------------------------------------------
log "kind cluster $cluster"
kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
kind create cluster --name "$cluster" --config hack/kind/cluster.yaml \
  --kubeconfig "$kubeconfig" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
export KUBECONFIG="$kubeconfig"
kubectl get nodes -L topology.kubernetes.io/region,topology.kubernetes.io/zone

# --- 2. CSI driver with volume cloning --------------------------------------------
log "external-snapshotter $snapshotter_version (CRDs + controller, required by the hostpath driver)"
snap="https://raw.githubusercontent.com/kubernetes-csi/external-snapshotter/$snapshotter_version"
for crd in snapshot.storage.k8s.io_volumesnapshotclasses snapshot.storage.k8s.io_volumesnapshotcontents snapshot.storage.k8s.io_volumesnapshots; do
  kubectl apply -f "$snap/client/config/crd/$crd.yaml"
done
kubectl apply -f "$snap/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml"
kubectl apply -f "$snap/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml"

log "csi-driver-host-path $hostpath_version (distributed: one driver per node)"
src="$work/csi-driver-host-path"
rm -rf "$src"
git clone --quiet --depth 1 --branch "$hostpath_version" \
  https://github.com/kubernetes-csi/csi-driver-host-path.git "$src"
# The distributed deployment runs the driver on every node; volumes (and their
# clones) live on the node that provisioned them, so clone pods follow them.
"$src/deploy/kubernetes-distributed/deploy.sh"
# Its WaitForFirstConsumer class places each volume on the node of the pod
# that first uses it; make it the default (the e2e sources use the default).
kubectl apply -f "$src/deploy/kubernetes-distributed/hostpath/csi-hostpath-storageclass-fast.yaml"
for sc in $(kubectl get storageclass -o name); do
  kubectl annotate "$sc" storageclass.kubernetes.io/is-default-class- >/dev/null
done
kubectl annotate storageclass csi-hostpath-fast storageclass.kubernetes.io/is-default-class=true --overwrite

# --- 3. image ----------------------------------------------------------------------
log "docker build $image_repo:$image_tag"
docker build --tag "$image_repo:$image_tag" .
kind load docker-image "$image_repo:$image_tag" --name "$cluster"

# --- 4. helm install + helm test ---------------------------------------------------
log "helm install $release"
helm install "$release" helm/clone-operator \
  --namespace "$namespace" --create-namespace \
  --set image.repository="$image_repo" --set image.tag="$image_tag" --set image.pullPolicy=Never \
  --set operator.regionAliases.oregon=us-west-2 --set operator.regionAliases.virginia=us-east-1 \
  --wait --timeout 5m
kubectl -n "$namespace" rollout status "deployment/$release" --timeout=120s
helm test "$release" --namespace "$namespace" --timeout 3m --logs

# --- 5. the e2e suite against it ---------------------------------------------------
log "pytest -m e2e against kind (operator in-cluster, from the chart)"
CLONE_OPERATOR_E2E_KUBECONFIG="$kubeconfig" \
CLONE_OPERATOR_E2E_IN_CLUSTER_OPERATOR="$namespace/$release" \
  .venv/bin/python -m pytest -m e2e ${PYTEST_ARGS:-}
