"""The target cluster of a clone: StatefulSet, governing Service and cloned PVCs.

A cluster is a StatefulSet, its headless Service and its PVCs. The target is
built from the source so that it is an independent cluster: its own name,
selector and pod labels (the source's Services never route to it), its own
Service, and PVCs pre-created under the StatefulSet's naming scheme
(`<claim template>-<statefulset>-<ordinal>`) whose `dataSource` is the
matching source PVC, so the StatefulSet controller adopts volumes that a CSI
driver cloned.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.api.common import LABEL_PREFIX, STATEFULSET_NAME_MAX
from clone_operator.builders import configs, identity, images, provenance, selectors
from clone_operator.builders import objects as object_builders
from clone_operator.builders.provenance import Owner
from clone_operator.settings import REGION_LABEL

ZONE_LABEL = "topology.kubernetes.io/zone"


class BuildError(ValueError):
    """The source cannot be cloned as asked; the message says why, for the user."""


class SourceReferenced(BuildError):
    """The built target would still refer to its source (the guard found it)."""

    def __init__(self, findings: list[identity.Finding]) -> None:
        shown = "; ".join(str(f) for f in findings[:10])
        more = f" (and {len(findings) - 10} more)" if len(findings) > 10 else ""
        super().__init__(
            f"the clone would still refer to its source: {shown}{more}. Change the source to "
            "a form the identity rewrite knows (a pod's DNS name "
            "`<pod>.<service>[.<namespace>[.svc[.<cluster domain>]]]`, `$(POD_NAME).<service>"
            ".<namespace>…`, the Service's `<service>.<namespace>…`) or replace the value "
            "with spec.targetOverrides"
        )
        self.findings = findings


IDENTITY_SPEC = ("selector", "serviceName", "volumeClaimTemplates")
"""What an override must not touch in a StatefulSet's spec: the clone's own selector,
Service and volumes' names."""


def identity_overrides(overrides: dict[str, Any] | None) -> list[str]:
    """The identity fields (`kind`, `metadata.name`, `spec.selector`, …) that `overrides`
    touches."""
    spec = (overrides or {}).get("spec")
    return object_builders.identity_overrides(overrides) + [
        f"spec.{key}" for key in IDENTITY_SPEC if isinstance(spec, dict) and key in spec
    ]


@dataclass(frozen=True)
class ClusterPlan:
    """Everything resolved that the target's objects are built from."""

    owner: Owner
    source: dict[str, Any]
    """The source StatefulSet as the API server returned it."""
    source_service: dict[str, Any] | None
    """The source's governing Service, when it exists."""
    target_name: str
    server_version: str | None = None
    server_container: str | None = None
    region: str | None = None
    """The `topology.kubernetes.io/region` value to pin pods to; None keeps the source's placement."""
    copy_method: CopyMethod = CopyMethod.VOLUME_CLONE
    zones: frozenset[str] = frozenset()
    """A VolumeClone of zonal volumes: the zones they live in (their PVs' node affinity),
    which the target's pods are pinned to, as a clone stays in its source's zone (a
    WaitForFirstConsumer class provisions where the pod is scheduled). Empty: not pinned."""
    source_pvc_sizes: dict[str, str] = field(default_factory=dict)
    """Capacity of each source PVC by name: a clone is at least as large as its source."""
    snapshots: dict[str, str] = field(default_factory=dict)
    """Snapshot, GroupSnapshot: the VolumeSnapshot each source PVC is restored from."""
    extra_labels: dict[str, str] = field(default_factory=dict)
    extra_annotations: dict[str, str] = field(default_factory=dict)
    statefulset_overrides: dict[str, Any] | None = None
    """A JSON merge patch applied to the built StatefulSet (a CloneObject's `overrides`,
    a CloningOperation's `targetOverrides`)."""
    cluster_domain: str = identity.DEFAULT_CLUSTER_DOMAIN
    source_configs: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    """The ConfigMaps and Secrets the source's pod template names, by (kind, name), as
    read (None: it does not exist)."""

    @property
    def namespace(self) -> str:
        return str(self.source["metadata"]["namespace"])

    @property
    def source_name(self) -> str:
        return str(self.source["metadata"]["name"])

    @property
    def replicas(self) -> int:
        return int(self.source["spec"].get("replicas", 1))

    @property
    def ordinals(self) -> range:
        start = int((self.source["spec"].get("ordinals") or {}).get("start", 0))
        return range(start, start + self.replicas)

    @property
    def selector(self) -> dict[str, Any]:
        return {"matchLabels": {provenance.CLUSTER: self.target_name}}

    @property
    def rename(self) -> identity.Rename:
        """Source identity → target identity (the target's Service is named as it is)."""
        service = self.source["spec"].get("serviceName") or self.source_name
        return identity.Rename(
            identity.Identity(self.source_name, service, self.namespace, self.cluster_domain),
            identity.Identity(
                self.target_name, self.target_name, self.namespace, self.cluster_domain
            ),
        )


def config_references(source: dict[str, Any]) -> list[configs.Reference]:
    """The ConfigMaps and Secrets the source's pod template names (to be read)."""
    return configs.references(source["spec"]["template"]["spec"])


def config_copies(plan: ClusterPlan) -> dict[tuple[str, str], str]:
    """(kind, source name) → name of the target's own copy."""
    try:
        return configs.plan_copies(
            config_references(plan.source), plan.source_configs, plan.target_name
        )
    except configs.MissingConfig as e:
        raise BuildError(str(e)) from None


def default_target_name(source: str, uid: str) -> str:
    """The default target name, short enough for a StatefulSet."""
    return provenance.clone_name(source, uid, STATEFULSET_NAME_MAX)


def target_name(requested: str | None, source: str, owner_uid: str) -> str:
    """A clone's target cluster name: the one its spec asks for, else the default. The
    one place both kinds, the webhook and the engine, work it out."""
    return requested or default_target_name(source, owner_uid)


def server_container(source: dict[str, Any], requested: str | None) -> dict[str, Any]:
    """The container whose image tag is the server version."""
    containers = source["spec"]["template"]["spec"]["containers"]
    if requested is None:
        return dict(containers[0])
    for c in containers:
        if c["name"] == requested:
            return dict(c)
    names = ", ".join(c["name"] for c in containers)
    raise BuildError(f"the source has no container {requested!r} (it has: {names})")


def source_server_version(source: dict[str, Any], container: str | None) -> str:
    return images.image_tag(server_container(source, container)["image"])


def metadata(
    plan: ClusterPlan, name: str, extra_labels: dict[str, str] | None = None
) -> dict[str, Any]:
    labels = {
        **(extra_labels or {}),
        **plan.extra_labels,
        **plan.owner.labels(),
        provenance.SOURCE_CLUSTER: plan.source_name,
        provenance.CLUSTER: plan.target_name,
    }
    annotations = {
        **plan.extra_annotations,
        **plan.owner.annotations(),
        provenance.SOURCE: f"{plan.namespace}/{plan.source_name}",
        provenance.SOURCE_UID: str(plan.source["metadata"].get("uid", "")),
    }
    return {
        "name": name,
        "namespace": plan.namespace,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [plan.owner.reference()],
    }


def pod_labels(plan: ClusterPlan) -> dict[str, str]:
    """The source's pod labels minus every key a source selector uses, plus ours.

    Dropping those keys (rather than changing values) is what guarantees that
    neither the source StatefulSet nor its Service can select a clone pod.
    """
    source_labels = dict(plan.source["spec"]["template"]["metadata"].get("labels") or {})
    used = selectors.keys_of(plan.source["spec"].get("selector"))
    if plan.source_service is not None:
        used |= set((plan.source_service["spec"].get("selector") or {}).keys())
    # A source that is itself a clone carries our labels: they describe it, not the new clone.
    kept = {
        k: v for k, v in source_labels.items() if k not in used and not k.startswith(LABEL_PREFIX)
    }
    return {
        **kept,
        provenance.CLUSTER: plan.target_name,
        provenance.SOURCE_CLUSTER: plan.source_name,
        plan.owner.uid_label: plan.owner.uid,
    }


def check_isolated(plan: ClusterPlan, labels: dict[str, str]) -> None:
    """Refuse a target whose pods the source's selector or Service would select."""
    if selectors.matches(plan.source["spec"].get("selector"), labels):
        raise BuildError("the source StatefulSet's selector would select the clone's pods")
    if plan.source_service is not None and selectors.matches(
        selectors.service_selector(plan.source_service["spec"].get("selector")), labels
    ):
        raise BuildError("the source Service's selector would route to the clone's pods")


def with_region(pod_spec: dict[str, Any], region: str) -> dict[str, Any]:
    """The pod spec pinned to one region: any region term of the source is replaced."""
    return pinned(pod_spec, REGION_LABEL, [region])


def pinned(pod_spec: dict[str, Any], key: str, values: list[str]) -> dict[str, Any]:
    """The pod spec pinned to nodes whose label `key` is one of `values`: any term of the
    source on that key (node selector or required node affinity) is replaced."""
    spec = copy.deepcopy(pod_spec)
    node_selector = spec.get("nodeSelector") or {}
    node_selector.pop(key, None)
    if node_selector:
        spec["nodeSelector"] = node_selector
    else:
        spec.pop("nodeSelector", None)
    requirement = {"key": key, "operator": "In", "values": values}
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    new_terms = []
    for term in terms:
        expressions = [e for e in term.get("matchExpressions") or [] if e["key"] != key]
        new_terms.append({**term, "matchExpressions": [*expressions, requirement]})
    required["nodeSelectorTerms"] = new_terms
    return spec


def _retarget(
    selector: dict[str, Any] | None, source_labels: dict[str, str], target: dict[str, Any]
) -> Any:
    return copy.deepcopy(target) if selectors.matches(selector, source_labels) else selector


def with_own_pod_selectors(
    pod_spec: dict[str, Any], source_labels: dict[str, str], target: dict[str, Any]
) -> dict[str, Any]:
    """The pod spec with (anti-)affinity and spread selectors that picked the source's
    own pods now picking the clone's pods: the clone's replicas keep spreading
    among themselves instead of only avoiding the source's pods."""
    spec = copy.deepcopy(pod_spec)
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        for term in rules.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            term["labelSelector"] = _retarget(term.get("labelSelector"), source_labels, target)
        for weighted in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            term = weighted.get("podAffinityTerm") or {}
            term["labelSelector"] = _retarget(term.get("labelSelector"), source_labels, target)
    for constraint in spec.get("topologySpreadConstraints") or []:
        constraint["labelSelector"] = _retarget(
            constraint.get("labelSelector"), source_labels, target
        )
    return spec


def _claim_templates(plan: ClusterPlan) -> list[dict[str, Any]]:
    templates = []
    for t in plan.source["spec"].get("volumeClaimTemplates") or []:
        meta = t.get("metadata") or {}
        templates.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    k: v for k, v in meta.items() if k in ("name", "labels", "annotations")
                },
                "spec": copy.deepcopy(t["spec"]),
            }
        )
    return templates


def check(plan: ClusterPlan) -> None:
    """Refuse (BuildError) a plan whose target cannot work, without building it."""
    if plan.server_version is not None:
        server_container(plan.source, plan.server_container)
    check_isolated(plan, pod_labels(plan))
    touched = identity_overrides(plan.statefulset_overrides)
    if touched:
        raise BuildError(
            f"overrides must not change {', '.join(touched)}: they are the clone's own identity"
        )


def build_statefulset(plan: ClusterPlan) -> dict[str, Any]:
    """The target StatefulSet: the source's pods and claims under a new identity."""
    spec = copy.deepcopy(plan.source["spec"])
    labels = pod_labels(plan)
    check_isolated(plan, labels)
    template = spec["template"]
    template_meta = template.get("metadata") or {}
    template["metadata"] = {
        "labels": labels,
        "annotations": {
            **(template_meta.get("annotations") or {}),
            **plan.owner.annotations(),
        },
    }
    pod_spec = template["spec"]
    if plan.server_version is not None:
        target_container = server_container(plan.source, plan.server_container)["name"]
        pod_spec["containers"] = [
            {**c, "image": images.with_tag(c["image"], plan.server_version)}
            if c["name"] == target_container
            else c
            for c in pod_spec["containers"]
        ]
    source_labels = dict(plan.source["spec"]["template"]["metadata"].get("labels") or {})
    pod_spec = with_own_pod_selectors(pod_spec, source_labels, plan.selector)
    if plan.region is not None:
        pod_spec = with_region(pod_spec, plan.region)
    if plan.zones:
        pod_spec = pinned(pod_spec, ZONE_LABEL, sorted(plan.zones))
    pod_spec = identity.rewrite_pod_spec(pod_spec, plan.rename)
    template["spec"] = configs.repointed(pod_spec, config_copies(plan))
    spec["selector"] = plan.selector
    spec["serviceName"] = plan.target_name
    spec["volumeClaimTemplates"] = _claim_templates(plan)
    spec.pop("status", None)
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(plan, plan.target_name),
        "spec": spec,
    }
    if plan.statefulset_overrides:
        statefulset = with_overrides(plan, statefulset, plan.statefulset_overrides)
    return statefulset


def with_overrides(
    plan: ClusterPlan, statefulset: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """The StatefulSet with the user's merge patch applied. It cannot change the clone's
    identity (refused), nor its provenance (applied again), nor make the source's
    selectors pick the clone's pods (refused)."""
    check(dataclasses.replace(plan, server_version=None))
    patched: dict[str, Any] = object_builders.merge_patch(statefulset, overrides)
    if not isinstance(patched.get("metadata"), dict) or not isinstance(patched.get("spec"), dict):
        raise BuildError("overrides must not remove metadata or spec")
    base = metadata(plan, plan.target_name)
    meta = patched["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **base["labels"]}
    meta["annotations"] = {**(meta.get("annotations") or {}), **base["annotations"]}
    meta["ownerReferences"] = base["ownerReferences"]
    labels = ((patched["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    check_isolated(plan, dict(labels))
    return patched


def build_service(plan: ClusterPlan) -> dict[str, Any]:
    """The target's own headless governing Service."""
    source_spec = (plan.source_service or {}).get("spec") or {}
    ports = [
        {k: v for k, v in p.items() if k != "nodePort"} for p in source_spec.get("ports") or []
    ]
    spec: dict[str, Any] = {
        "clusterIP": "None",
        "selector": dict(plan.selector["matchLabels"]),
        "publishNotReadyAddresses": bool(source_spec.get("publishNotReadyAddresses", False)),
    }
    if ports:
        spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, plan.target_name),
        "spec": spec,
    }


def volume_pairs(plan: ClusterPlan) -> list[tuple[str, str]]:
    """(source PVC, target PVC) for every volume the target's data is copied into."""
    if plan.copy_method is CopyMethod.NONE:
        return []
    return [
        (
            f"{t['metadata']['name']}-{plan.source_name}-{i}",
            f"{t['metadata']['name']}-{plan.target_name}-{i}",
        )
        for t in _claim_templates(plan)
        for i in plan.ordinals
    ]


def source_pvc_names(plan: ClusterPlan) -> list[str]:
    """The source PVCs that the target's volumes are copied from."""
    return [source for source, _ in volume_pairs(plan)]


def data_source(plan: ClusterPlan, source_pvc: str) -> dict[str, Any]:
    """Where a target volume's data comes from: the source PVC (a CSI clone), or the
    VolumeSnapshot taken of it."""
    if plan.copy_method.snapshots:
        snapshot = plan.snapshots.get(source_pvc)
        if snapshot is None:
            raise BuildError(f"no snapshot of source PVC {source_pvc} was taken")
        return {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}
    return {"kind": "PersistentVolumeClaim", "name": source_pvc}


def build_pvcs(plan: ClusterPlan) -> list[dict[str, Any]]:
    """One PVC per claim template and ordinal, each a CSI clone of the source's, or
    restored from its snapshot, or (Transfer) empty, for the movers to fill."""
    if plan.copy_method is CopyMethod.NONE:
        return []
    pvcs = []
    for template in _claim_templates(plan):
        claim = template["metadata"]["name"]
        for i in plan.ordinals:
            source_pvc = f"{claim}-{plan.source_name}-{i}"
            if source_pvc not in plan.source_pvc_sizes:
                raise BuildError(
                    f"source PVC {source_pvc} does not exist; the source cluster is not complete"
                )
            spec = copy.deepcopy(template["spec"])
            spec.pop("selector", None)
            spec.pop("dataSourceRef", None)
            spec.pop("dataSource", None)
            if not plan.copy_method.transfers:  # a Transfer's movers fill it
                spec["dataSource"] = data_source(plan, source_pvc)
            resources = spec.setdefault("resources", {})
            resources.setdefault("requests", {})["storage"] = plan.source_pvc_sizes[source_pvc]
            meta = metadata(
                plan, f"{claim}-{plan.target_name}-{i}", template["metadata"].get("labels")
            )
            meta["labels"].update({k: v for k, v in plan.selector["matchLabels"].items()})
            meta["annotations"][provenance.SOURCE] = f"{plan.namespace}/{source_pvc}"
            pvcs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": meta,
                    "spec": spec,
                }
            )
    return pvcs


def build_configs(plan: ClusterPlan) -> list[dict[str, Any]]:
    """The target's own copies of the ConfigMaps and Secrets its template names."""
    copies = []
    for (kind, name), copy_name in config_copies(plan).items():
        source = plan.source_configs.get((kind, name))
        if source is None:
            continue  # optional and missing: the clone does without, as its source does
        meta = metadata(plan, copy_name)
        meta["annotations"][provenance.SOURCE] = f"{plan.namespace}/{kind}/{name}"
        meta["annotations"][provenance.SOURCE_UID] = str(source["metadata"].get("uid", ""))
        copies.append(configs.build_copy({"kind": kind, **source}, copy_name, meta, plan.rename))
    return copies


def rewrites(plan: ClusterPlan, objects: list[dict[str, Any]]) -> list[identity.Rewrite]:
    """What the identity rewrite changed in the built objects, for the user's audit: the
    StatefulSet's pod template and the values of each copied ConfigMap and Secret."""
    rename, changed = plan.rename, []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "StatefulSet":
            source_template = plan.source["spec"]["template"]
            changed += identity.rewrites(
                kind, name, source_template, obj["spec"]["template"], rename, "spec.template"
            )
        elif kind in ("ConfigMap", "Secret"):
            source_name = obj["metadata"]["annotations"][provenance.SOURCE].rsplit("/", 1)[-1]
            source = plan.source_configs.get((kind, source_name)) or {}
            for key in ("data", "binaryData"):
                changed += identity.rewrites(
                    kind, name, source.get(key) or {}, obj.get(key) or {}, rename, key
                )
    return changed


def build_cluster(plan: ClusterPlan) -> list[dict[str, Any]]:
    """Every object of the target, in creation order (config and volumes first).

    The guard runs on the result: if anything in it still refers to the source's pods
    or Service, SourceReferenced is raised and nothing is to be created."""
    objects = [*build_configs(plan), *build_pvcs(plan), build_service(plan)]
    objects.append(build_statefulset(plan))
    found = identity.findings(objects, plan.rename)
    if found:
        raise SourceReferenced(found)
    return objects
