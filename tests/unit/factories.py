"""Plain-data fixtures for the pure layers: a source cluster as the API server returns it."""

from __future__ import annotations

import copy
from typing import Any

from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.builders.clusters import ClusterPlan
from clone_operator.builders.provenance import Owner

NAMESPACE = "shop"
OWNER = Owner(
    kind="CloningOperation",
    name="clone-search",
    namespace=NAMESPACE,
    uid="0a1b2c3d-4e5f-6789-abcd-ef0123456789",
)
OBJECT_OWNER = Owner(
    kind="CloneObject",
    name="copy-search",
    namespace=NAMESPACE,
    uid="99999999-8888-7777-6666-555555555555",
)


def source_statefulset(
    name: str = "search",
    replicas: int = 3,
    claims: tuple[str, ...] = ("data",),
    image: str = "typesense/typesense:27.1",
) -> dict[str, Any]:
    """A typical source StatefulSet: selector, labelled pods, claim templates."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": "11111111-2222-3333-4444-555555555555",
            "generation": 4,
            "labels": {"app": name},
        },
        "spec": {
            "replicas": replicas,
            "serviceName": f"{name}-headless",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name, "tier": "backend", "team": "search"},
                    "annotations": {"prometheus.io/scrape": "true"},
                },
                "spec": {
                    "containers": [
                        {"name": "server", "image": image},
                        {"name": "metrics", "image": "prom/exporter:1.2"},
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": claim, "labels": {"volume": claim}},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "csi-hostpath",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
                for claim in claims
            ],
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def source_service(name: str = "search", selector: dict[str, str] | None = None) -> dict[str, Any]:
    """The source's governing headless Service."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{name}-headless", "namespace": NAMESPACE},
        "spec": {
            "clusterIP": "None",
            "selector": {"app": name} if selector is None else selector,
            "ports": [{"name": "http", "port": 8108, "targetPort": 8108}],
        },
    }


def pvc_sizes(source: dict[str, Any], size: str = "1Gi") -> dict[str, str]:
    """Every source PVC the StatefulSet controller would have created, with a size."""
    name = source["metadata"]["name"]
    start = int((source["spec"].get("ordinals") or {}).get("start", 0))
    return {
        f"{t['metadata']['name']}-{name}-{i}": size
        for t in source["spec"].get("volumeClaimTemplates") or []
        for i in range(start, start + int(source["spec"].get("replicas", 1)))
    }


def plan(
    source: dict[str, Any] | None = None,
    service: dict[str, Any] | bool | None = True,
    **overrides: Any,
) -> ClusterPlan:
    """A ClusterPlan over deep copies of the fixtures (tests may mutate them freely)."""
    src = copy.deepcopy(source) if source is not None else source_statefulset()
    if service is True:
        svc: dict[str, Any] | None = source_service(src["metadata"]["name"])
    elif service is False or service is None:
        svc = None
    else:
        svc = copy.deepcopy(service)
    values: dict[str, Any] = {
        "owner": OWNER,
        "source": src,
        "source_service": svc,
        "target_name": f"{src['metadata']['name']}-copy",
        "copy_method": CopyMethod.VOLUME_CLONE,
        "source_pvc_sizes": pvc_sizes(src),
    }
    values.update(overrides)
    return ClusterPlan(**values)
