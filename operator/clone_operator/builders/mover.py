"""The data mover's objects: one transfer per volume, rsync over TLS. Pure.

A transfer copies one volume: a target pod serves the new volume (where the
target runs) behind a Service; a source pod reads the point-in-time copy of the
source volume (where the source lives) and sends it through TLS with a
pre-shared key (`mover/mover.sh`, the image's entrypoint). The key is made per
transfer, lives in one Secret, and goes with the operation.

Every pod runs under the restricted Pod Security profile: non-root (the uid and
fsGroup of the source's own pods, so that the mover reads and writes what the
application can), no privilege escalation, every capability dropped, the
runtime's seccomp profile, a read-only root filesystem; no host namespaces, no
host paths, no ServiceAccount token, no Service links. A killed container is
restarted in place (`OnFailure`) and resumes: the target keeps what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clone_operator.builders import provenance

PORT = 8000
KEY_FILE = "psk.txt"
KEYS_DIR = "/keys"
DATA_DIR = "/data"
SOURCE, TARGET = "source", "target"
ROLE_LABEL = "cloning.dev/mover-role"
TRANSFER_LABEL = "cloning.dev/transfer"
# Kubernetes' default UID of a restricted workload that names none (the image's too).
DEFAULT_UID = 65532


@dataclass(frozen=True)
class Placement:
    """Where one end runs: node labels to match (e.g. the region) and taints to tolerate."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    required_node_affinity: dict[str, Any] | None = None
    """A node selector (`nodeSelectorTerms`) the node must match, as in a pod's
    `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`."""


@dataclass(frozen=True)
class TransferPlan:
    """One volume's transfer: which claims, where each end runs, as whom."""

    owner: provenance.Owner
    name: str
    """The transfer's name: its pods are `<name>-source` and `<name>-target`, its Service
    and Secret `<name>` (a DNS label: at most 56 characters, so the pods' names fit)."""
    namespace: str
    image: str
    source_claim: str
    """The point-in-time copy of the source volume (restored from the cut)."""
    target_claim: str
    source_place: Placement = field(default_factory=Placement)
    target_place: Placement = field(default_factory=Placement)
    run_as_user: int = DEFAULT_UID
    run_as_group: int = DEFAULT_UID
    fs_group: int | None = None
    """The pods' fsGroup; None: `run_as_group` (the key file is readable through it)."""
    bwlimit_kib: int | None = None
    """rsync's --bwlimit (KiB/s), for tests that must catch a transfer mid-way."""
    cluster_domain: str = "cluster.local"

    @property
    def labels(self) -> dict[str, str]:
        return {**self.owner.labels(), TRANSFER_LABEL: self.name}

    @property
    def target_address(self) -> str:
        """The target Service as the source pod dials it."""
        return f"{self.name}.{self.namespace}.svc.{self.cluster_domain}:{PORT}"


def transfer_name(target: str, index: int) -> str:
    """The name of the transfer of a target's `index`-th volume (its Service and Secret;
    its pods and temporary PVC add a suffix): `<target>-mv<index>`."""
    return f"{target}-mv{index}"


def source_claim_name(name: str) -> str:
    """The temporary PVC the source side reads: the cut, restored where the source lives."""
    return f"{name}-cut"


def restored_claim(
    plan: TransferPlan,
    snapshot: str,
    storage_class: str | None,
    size: str,
    access_modes: list[str] | None = None,
) -> dict[str, Any]:
    """The temporary PVC restored from the source volume's snapshot for the source pod
    to read (the storage provisions it where that pod is scheduled: the source's
    region). Owned like every part; removed once its volume is transferred."""
    spec: dict[str, Any] = {
        "accessModes": list(access_modes or ["ReadWriteOnce"]),
        "resources": {"requests": {"storage": size}},
        "dataSource": {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot,
        },
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(plan, plan.source_claim),
        "spec": spec,
    }


def _metadata(plan: TransferPlan, name: str, role: str | None = None) -> dict[str, Any]:
    labels = dict(plan.labels)
    if role:
        labels[ROLE_LABEL] = role
    return {
        "name": name,
        "namespace": plan.namespace,
        "labels": labels,
        "annotations": plan.owner.annotations(),
        "ownerReferences": [plan.owner.reference()],
    }


def credentials(plan: TransferPlan, key_hex: str) -> dict[str, Any]:
    """The transfer's pre-shared key (the caller makes it: 64 random hex digits), as a
    Secret both pods mount. stunnel reads `<identity>:<key>`."""
    if len(key_hex) < 32 or any(c not in "0123456789abcdef" for c in key_hex):
        raise ValueError("the mover's key must be at least 32 lowercase hex digits")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(plan, plan.name),
        "type": "Opaque",
        "immutable": True,
        "stringData": {KEY_FILE: f"{plan.name}:{key_hex}\n"},
    }


def target_service(plan: TransferPlan) -> dict[str, Any]:
    """The target pod's address for the source pod: a ClusterIP Service, TLS port only."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(plan, plan.name),
        "spec": {
            "type": "ClusterIP",
            "selector": {TRANSFER_LABEL: plan.name, ROLE_LABEL: TARGET},
            "ports": [{"name": "rsync-tls", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def _security(plan: TransferPlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) security contexts of the restricted profile."""
    pod: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": plan.run_as_user,
        "runAsGroup": plan.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The key file and the new volume belong to this group (a Secret's files are root's).
    pod["fsGroup"] = plan.run_as_group if plan.fs_group is None else plan.fs_group
    pod["fsGroupChangePolicy"] = "OnRootMismatch"
    container = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def _pod(plan: TransferPlan, role: str) -> dict[str, Any]:
    place = plan.source_place if role == SOURCE else plan.target_place
    claim = plan.source_claim if role == SOURCE else plan.target_claim
    pod_security, container_security = _security(plan)
    env = [{"name": "MOVER_KEY_FILE", "value": f"{KEYS_DIR}/{KEY_FILE}"}]
    if role == SOURCE:
        env.append({"name": "MOVER_TARGET", "value": plan.target_address})
        if plan.bwlimit_kib:
            env.append({"name": "MOVER_BWLIMIT", "value": str(plan.bwlimit_kib)})
    else:
        env.append({"name": "MOVER_PORT", "value": str(PORT)})
    container: dict[str, Any] = {
        "name": "mover",
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [role],
        "env": env,
        "securityContext": container_security,
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR, "readOnly": role == SOURCE},
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    if role == TARGET:
        container["ports"] = [{"name": "rsync-tls", "containerPort": PORT, "protocol": "TCP"}]
        container["readinessProbe"] = {"tcpSocket": {"port": PORT}, "periodSeconds": 2}
    spec: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": pod_security,
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
        "volumes": [
            {
                "name": "data",
                "persistentVolumeClaim": {"claimName": claim, "readOnly": role == SOURCE},
            },
            {
                "name": "keys",
                "secret": {"secretName": plan.name, "defaultMode": 0o440},
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    if place.node_selector:
        spec["nodeSelector"] = dict(place.node_selector)
    if place.tolerations:
        spec["tolerations"] = [dict(t) for t in place.tolerations]
    if place.required_node_affinity:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": place.required_node_affinity
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(plan, f"{plan.name}-{role}", role),
        "spec": spec,
    }


def target_pod(plan: TransferPlan) -> dict[str, Any]:
    """Serves the new volume until the source marks the copy complete, then succeeds."""
    return _pod(plan, TARGET)


def source_pod(plan: TransferPlan) -> dict[str, Any]:
    """Sends the point-in-time copy (mounted read-only) and succeeds once it is all there."""
    return _pod(plan, SOURCE)
