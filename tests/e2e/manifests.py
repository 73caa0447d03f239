"""The manifests the e2e suite applies: sources, CloningOperations, CloneObjects.

Pure builders (plain dicts, no cluster access), shared by the e2e modules and the
benchmarks; each kind is built in one place.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "cloning.dev/v1alpha1"


def statefulset(
    name: str,
    replicas: int = 3,
    image: str = "typesense/typesense:27.1",
    claims: list[str] | None = None,
    region: str | None = None,
    size: str = "1Gi",
) -> list[dict[str, Any]]:
    """A source cluster: StatefulSet with volumeClaimTemplates and its headless Service."""
    labels = {"app": name}
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "server",
                "image": image,
                "ports": [{"containerPort": 8108, "name": "http"}],
                "volumeMounts": [{"name": c, "mountPath": f"/{c}"} for c in (claims or ["data"])],
            }
        ]
    }
    if region:
        pod_spec["nodeSelector"] = {"topology.kubernetes.io/region": region}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                "ports": [{"port": 8108, "name": "http"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "serviceName": name,
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": {**labels, "tier": "search"}},
                    "spec": pod_spec,
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": c},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}},
                        },
                    }
                    for c in (claims or ["data"])
                ],
            },
        },
    ]


def operation(name: str, source: str, **spec: Any) -> dict[str, Any]:
    """A CloningOperation of `source` with these spec fields (camelCase)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "CloningOperation",
        "metadata": {"name": name},
        "spec": {"sourceCluster": source, **spec},
    }


def clone_object(name: str, kind: str, source: str, /, **options: Any) -> dict[str, Any]:
    """A CloneObject of the `kind` named `source`, with these options."""
    return {
        "apiVersion": API_VERSION,
        "kind": "CloneObject",
        "metadata": {"name": name},
        "spec": {"source": {"kind": kind, "name": source}, "options": options},
    }


def claim(
    name: str,
    size: str = "1Gi",
    storage_class: str | None = None,
    data_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ReadWriteOnce PersistentVolumeClaim (of the default class unless named), made
    empty or from a `data_source` (a PVC to clone, a VolumeSnapshot to restore)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    if data_source:
        spec["dataSource"] = data_source
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": spec}  # fmt: skip
