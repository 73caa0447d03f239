"""A clone's own config: copies of the ConfigMaps and Secrets its pod template uses. Pure.

The source's pod template refers to ConfigMaps and Secrets by name (volumes,
projected volumes, `env[].valueFrom`, `envFrom`). A clone that shared them would
read its source's peer list, and see every later change of it. So each one is
copied for the target (`<target>-<name>`, the identity rewrite applied to its
values) and the target's template points at the copies.

Shared, not copied (they carry no cluster identity, and a copy would be a second
credential to rotate): `imagePullSecrets`, the ServiceAccount and its token,
and the Secrets of volume plugins (`csi.nodePublishSecretRef`, `cephfs.secretRef`, …).
A Secret of type `kubernetes.io/service-account-token` is shared too: the API
server fills it in itself.

An `optional: true` reference to an object that does not exist keeps being
optional and points at the copy's name, where nothing is created: the clone
starts as its source did (without it), and creating the source's object later
does not reach the clone. A required reference to a missing object is refused
(the source's own pods could not start either).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clone_operator.api.cloneobjects import SourceKind
from clone_operator.builders import identity
from clone_operator.builders.objects import UNCLONEABLE_SECRET_TYPES, stripped

OBJECT_NAME_MAX = 253


@dataclass(frozen=True)
class Reference:
    """One place where the pod template names a ConfigMap or Secret."""

    kind: str
    """`ConfigMap` or `Secret`."""
    name: str
    path: str
    """Where, e.g. `spec.template.spec.volumes[1].configMap.name`."""
    optional: bool


# (holder key in a volume or projection, kind, name key)
_VOLUME_KEYS = (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName"))
_PROJECTION_KEYS = (("configMap", "ConfigMap", "name"), ("secret", "Secret", "name"))
_ENV_KEYS = (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret"))
_ENV_FROM_KEYS = (("configMapRef", "ConfigMap"), ("secretRef", "Secret"))

# A located name: (kind, the dict that holds it, its key there, path, optional)
_Slot = tuple[str, dict[str, Any], str, str, bool]


def _slots(pod_spec: dict[str, Any], base: str) -> Iterator[_Slot]:
    for i, volume in enumerate(pod_spec.get("volumes") or []):
        for holder, kind, key in _VOLUME_KEYS:
            ref = volume.get(holder)
            if ref and ref.get(key):
                path = f"{base}.volumes[{i}].{holder}.{key}"
                yield kind, ref, key, path, bool(ref.get("optional"))
        for j, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            for holder, kind, key in _PROJECTION_KEYS:
                ref = source.get(holder)
                if ref and ref.get(key):
                    path = f"{base}.volumes[{i}].projected.sources[{j}].{holder}.{key}"
                    yield kind, ref, key, path, bool(ref.get("optional"))
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod_spec.get(group) or []):
            where = f"{base}.{group}[{i}]"
            for j, env in enumerate(container.get("env") or []):
                for holder, kind in _ENV_KEYS:
                    ref = (env.get("valueFrom") or {}).get(holder)
                    if ref and ref.get("name"):
                        path = f"{where}.env[{j}].valueFrom.{holder}.name"
                        yield kind, ref, "name", path, bool(ref.get("optional"))
            for j, env_from in enumerate(container.get("envFrom") or []):
                for holder, kind in _ENV_FROM_KEYS:
                    ref = env_from.get(holder)
                    if ref and ref.get("name"):
                        path = f"{where}.envFrom[{j}].{holder}.name"
                        yield kind, ref, "name", path, bool(ref.get("optional"))


POD_SPEC_PATH = "spec.template.spec"


def references(pod_spec: dict[str, Any]) -> list[Reference]:
    """Every ConfigMap and Secret the pod spec names, in order of appearance."""
    return [
        Reference(kind, ref[key], path, optional)
        for kind, ref, key, path, optional in _slots(pod_spec, POD_SPEC_PATH)
    ]


def copy_name(target: str, name: str) -> str:
    """`<target>-<name>`, shortened with a hash when longer than an object name may be."""
    full = f"{target}-{name}"
    if len(full) <= OBJECT_NAME_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: OBJECT_NAME_MAX - 9].rstrip('-.')}-{digest}"


def shared(obj: dict[str, Any] | None) -> bool:
    """Objects the clone uses as they are (see the module docstring)."""
    return obj is not None and obj.get("type") in UNCLONEABLE_SECRET_TYPES


class MissingConfig(ValueError):
    """A required reference names an object that does not exist."""


def plan_copies(
    refs: list[Reference], found: dict[tuple[str, str], dict[str, Any] | None], target: str
) -> dict[tuple[str, str], str]:
    """(kind, source name) → the copy's name, for every reference the clone gets its own
    copy for (an optional one to a missing object included: nothing is made for it)."""
    names: dict[tuple[str, str], str] = {}
    for ref in refs:
        obj = found.get((ref.kind, ref.name))
        if obj is None and not ref.optional:
            raise MissingConfig(
                f"{ref.path} names {ref.kind} {ref.name}, which does not exist (the source's "
                "own pods could not start either)"
            )
        if not shared(obj):
            names[(ref.kind, ref.name)] = copy_name(target, ref.name)
    return names


def repointed(pod_spec: dict[str, Any], copies: dict[tuple[str, str], str]) -> dict[str, Any]:
    """A deep copy of the pod spec whose references name the copies."""
    spec = copy.deepcopy(pod_spec)
    for kind, ref, key, _path, _optional in _slots(spec, POD_SPEC_PATH):
        new = copies.get((kind, ref[key]))
        if new is not None:
            ref[key] = new
    return spec


def build_copy(
    source: dict[str, Any], name: str, metadata: dict[str, Any], rename: identity.Rename
) -> dict[str, Any]:
    """The target's copy of one ConfigMap or Secret: stripped, rewritten, renamed, with
    the target's provenance `metadata` (labels, annotations, owner reference) merged in."""
    kind = SourceKind(source["kind"])
    obj = identity.rewrite_data(stripped(source, kind), rename)
    meta = obj["metadata"]
    obj["metadata"] = {
        **meta,
        **metadata,
        "name": name,
        "labels": {**(meta.get("labels") or {}), **metadata.get("labels", {})},
        "annotations": {**(meta.get("annotations") or {}), **metadata.get("annotations", {})},
    }
    return obj
