"""The target cluster's objects: isolated from the source, placed, versioned, with cloned PVCs."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.api.common import STATEFULSET_NAME_MAX
from clone_operator.builders import provenance, selectors
from clone_operator.builders.clusters import (
    BuildError,
    build_cluster,
    build_pvcs,
    build_service,
    build_statefulset,
    check_isolated,
    default_target_name,
    pod_labels,
    server_container,
    source_pvc_names,
    source_server_version,
    target_name,
    with_region,
)
from clone_operator.settings import REGION_LABEL
from tests.unit.factories import NAMESPACE, OWNER, plan, source_service, source_statefulset

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def selected_by_source(p: Any, labels: dict[str, str]) -> bool:
    by_sts = selectors.matches(p.source["spec"].get("selector"), labels)
    by_svc = p.source_service is not None and selectors.matches(
        selectors.service_selector(p.source_service["spec"].get("selector")), labels
    )
    return bool(by_sts or by_svc)


def clone_of_a_clone() -> tuple[dict[str, Any], dict[str, Any]]:
    """A source that the operator itself created earlier: selected by cloning.dev labels."""
    sts = source_statefulset(name="search-copy")
    sts["spec"]["selector"] = {"matchLabels": {provenance.CLUSTER: "search-copy"}}
    sts["spec"]["template"]["metadata"]["labels"] = {
        "app": "search",
        provenance.CLUSTER: "search-copy",
        provenance.SOURCE_CLUSTER: "search",
        provenance.OPERATION_UID: "old-operation-uid",
    }
    svc = source_service("search-copy", selector={provenance.CLUSTER: "search-copy"})
    return sts, svc


def with_expression_selector() -> dict[str, Any]:
    sts = source_statefulset()
    sts["spec"]["selector"] = {
        "matchExpressions": [
            {"key": "app", "operator": "In", "values": ["search"]},
            {"key": "tier", "operator": "Exists"},
        ]
    }
    return sts


ISOLATION_CASES = {
    "plain": (source_statefulset(), source_service()),
    "service-selects-more-keys": (
        source_statefulset(),
        source_service(selector={"app": "search", "team": "search"}),
    ),
    "service-selects-other-keys": (
        source_statefulset(),
        source_service(selector={"tier": "backend"}),
    ),
    "match-expressions": (with_expression_selector(), source_service()),
    "no-service": (source_statefulset(), None),
    "clone-of-a-clone": clone_of_a_clone(),
}


# --- isolation: the source never selects the clone's pods ------------------------------------


@pytest.mark.parametrize(("sts", "svc"), ISOLATION_CASES.values(), ids=ISOLATION_CASES.keys())
def test_target_pods_are_never_selected_by_the_source(
    sts: dict[str, Any], svc: dict[str, Any] | None
) -> None:
    p = plan(sts, svc if svc is not None else False, target_name="search-copy-2")
    labels = pod_labels(p)
    assert not selected_by_source(p, labels)
    check_isolated(p, labels)  # does not raise
    built = build_statefulset(p)["spec"]["template"]["metadata"]["labels"]
    assert built == labels
    assert not selected_by_source(p, built)


@pytest.mark.parametrize(("sts", "svc"), ISOLATION_CASES.values(), ids=ISOLATION_CASES.keys())
def test_target_selector_and_service_select_the_target_pods(
    sts: dict[str, Any], svc: dict[str, Any] | None
) -> None:
    p = plan(sts, svc if svc is not None else False, target_name="search-copy-2")
    statefulset = build_statefulset(p)
    service = build_service(p)
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    # The API server rejects a StatefulSet whose selector does not match its template.
    assert selectors.matches(statefulset["spec"]["selector"], labels)
    assert selectors.matches(selectors.service_selector(service["spec"]["selector"]), labels)


def test_pod_labels_drop_selector_keys_and_keep_the_rest() -> None:
    p = plan(source_statefulset(), source_service(selector={"app": "search", "tier": "backend"}))
    labels = pod_labels(p)
    assert "app" not in labels
    assert "tier" not in labels
    assert labels["team"] == "search"
    assert labels[provenance.CLUSTER] == "search-copy"
    assert labels[provenance.SOURCE_CLUSTER] == "search"
    assert labels[provenance.OPERATION_UID] == OWNER.uid


def test_pod_labels_drop_keys_used_only_in_match_expressions() -> None:
    labels = pod_labels(plan(with_expression_selector()))
    assert "app" not in labels
    assert "tier" not in labels
    assert labels["team"] == "search"


def test_clone_of_a_clone_gets_fresh_provenance_labels() -> None:
    sts, svc = clone_of_a_clone()
    labels = pod_labels(plan(sts, svc, target_name="search-copy-2"))
    assert labels[provenance.CLUSTER] == "search-copy-2"
    assert labels[provenance.SOURCE_CLUSTER] == "search-copy"
    assert labels[provenance.OPERATION_UID] == OWNER.uid
    assert labels["app"] == "search"


def test_clone_object_owner_labels_pods_with_its_own_uid_key() -> None:
    from tests.unit.factories import OBJECT_OWNER

    labels = pod_labels(plan(owner=OBJECT_OWNER))
    assert labels[provenance.CLONE_OBJECT_UID] == OBJECT_OWNER.uid
    assert provenance.OPERATION_UID not in labels


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["other"]}]},
        {"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]},
    ],
    ids=["NotIn", "DoesNotExist"],
)
def test_unavoidable_overlap_with_the_statefulset_selector_is_refused(
    selector: dict[str, Any],
) -> None:
    sts = source_statefulset()
    sts["spec"]["selector"] = selector
    p = plan(sts)
    with pytest.raises(BuildError, match="StatefulSet's selector"):
        check_isolated(p, pod_labels(p))
    with pytest.raises(BuildError):
        build_statefulset(p)
    with pytest.raises(BuildError):
        build_cluster(p)


def test_service_selecting_the_target_name_is_refused() -> None:
    svc = source_service(selector={provenance.CLUSTER: "search-copy"})
    p = plan(source_statefulset(), svc, target_name="search-copy")
    with pytest.raises(BuildError, match="Service's selector"):
        check_isolated(p, pod_labels(p))
    with pytest.raises(BuildError):
        build_statefulset(p)


def test_check_isolated_accepts_disjoint_labels_and_refuses_overlapping_ones() -> None:
    p = plan()
    check_isolated(p, {"other": "x"})
    with pytest.raises(BuildError, match="StatefulSet"):
        check_isolated(p, {"app": "search"})
    svc_only = plan(service=source_service(selector={"role": "db"}))
    with pytest.raises(BuildError, match="Service"):
        check_isolated(svc_only, {"role": "db"})


# --- placement: with_region ---------------------------------------------------------------------


def required_terms(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    node_affinity = pod_spec["affinity"]["nodeAffinity"]
    terms: list[dict[str, Any]] = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    return terms


def region_values(term: dict[str, Any]) -> list[list[str]]:
    return [e["values"] for e in term.get("matchExpressions", []) if e["key"] == REGION_LABEL]


def test_with_region_pins_a_spec_without_affinity() -> None:
    out = with_region({"containers": []}, "eu-west-1")
    assert required_terms(out) == [
        {"matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": ["eu-west-1"]}]}
    ]


def test_with_region_replaces_the_node_selector_region_and_keeps_other_keys() -> None:
    out = with_region({"nodeSelector": {REGION_LABEL: "us-east-1", "disk": "ssd"}}, "eu-west-1")
    assert out["nodeSelector"] == {"disk": "ssd"}
    assert region_values(required_terms(out)[0]) == [["eu-west-1"]]


def test_with_region_removes_a_node_selector_left_empty() -> None:
    out = with_region({"nodeSelector": {REGION_LABEL: "us-east-1"}}, "eu-west-1")
    assert "nodeSelector" not in out


def test_with_region_replaces_region_requirements_in_every_term_and_keeps_the_others() -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "Exists"}
    by_name = [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]
    pod_spec: dict[str, Any] = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": REGION_LABEL, "operator": "In", "values": ["us-east-1"]},
                                zone,
                            ]
                        },
                        {"matchFields": copy.deepcopy(by_name)},
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "preference": {"matchExpressions": [zone]}}
                ],
            },
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname", "labelSelector": {}}
                ]
            },
        }
    }
    original = copy.deepcopy(pod_spec)
    out = with_region(pod_spec, "eu-west-1")
    terms = required_terms(out)
    assert len(terms) == 2
    for term in terms:
        assert region_values(term) == [["eu-west-1"]]
    assert zone in terms[0]["matchExpressions"]
    assert terms[1]["matchFields"] == by_name
    assert out["affinity"]["podAntiAffinity"] == original["affinity"]["podAntiAffinity"]
    assert (
        out["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        == original["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    )
    assert pod_spec == original, "with_region must not mutate its input"


def test_build_statefulset_applies_the_region_only_when_asked() -> None:
    sts = source_statefulset()
    sts["spec"]["template"]["spec"]["nodeSelector"] = {REGION_LABEL: "us-east-1"}
    kept = build_statefulset(plan(sts))["spec"]["template"]["spec"]
    assert kept["nodeSelector"] == {REGION_LABEL: "us-east-1"}
    assert "affinity" not in kept
    moved = build_statefulset(plan(sts, region="eu-west-1"))["spec"]["template"]["spec"]
    assert "nodeSelector" not in moved
    assert region_values(required_terms(moved)[0]) == [["eu-west-1"]]


# --- server version -----------------------------------------------------------------------------


def images_of(statefulset: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in statefulset["spec"]["template"]["spec"]["containers"]}


def test_server_version_replaces_the_first_container_tag_only() -> None:
    out = images_of(build_statefulset(plan(server_version="28.0")))
    assert out == {"server": "typesense/typesense:28.0", "metrics": "prom/exporter:1.2"}


def test_server_container_selects_which_image_gets_the_version() -> None:
    out = images_of(build_statefulset(plan(server_version="2.0", server_container="metrics")))
    assert out == {"server": "typesense/typesense:27.1", "metrics": "prom/exporter:2.0"}


def test_without_server_version_images_are_unchanged() -> None:
    assert images_of(build_statefulset(plan())) == images_of(source_statefulset())


def test_unknown_server_container_is_a_build_error_listing_the_containers() -> None:
    with pytest.raises(BuildError, match=r"'db'.*server, metrics"):
        server_container(source_statefulset(), "db")
    with pytest.raises(BuildError):
        build_statefulset(plan(server_version="28.0", server_container="db"))


def test_source_server_version_reads_the_tag() -> None:
    assert source_server_version(source_statefulset(), None) == "27.1"
    assert source_server_version(source_statefulset(), "metrics") == "1.2"
    untagged = source_statefulset(image="host:5000/typesense")
    assert source_server_version(untagged, None) == "latest"


# --- the StatefulSet and Service ----------------------------------------------------------------


def test_statefulset_identity_and_provenance() -> None:
    p = plan()
    sts = build_statefulset(p)
    meta = sts["metadata"]
    assert (sts["apiVersion"], sts["kind"]) == ("apps/v1", "StatefulSet")
    assert meta["name"] == "search-copy"
    assert meta["namespace"] == NAMESPACE
    assert meta["labels"][provenance.CLUSTER] == "search-copy"
    assert meta["labels"][provenance.SOURCE_CLUSTER] == "search"
    assert meta["labels"][provenance.MANAGED_BY] == provenance.OPERATOR_NAME
    assert meta["annotations"][provenance.SOURCE] == f"{NAMESPACE}/search"
    assert meta["annotations"][provenance.SOURCE_UID] == p.source["metadata"]["uid"]
    assert meta["ownerReferences"] == [OWNER.reference()]
    spec = sts["spec"]
    assert spec["serviceName"] == "search-copy"
    assert spec["selector"] == {"matchLabels": {provenance.CLUSTER: "search-copy"}}
    assert spec["replicas"] == 3
    assert "status" not in sts
    assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["data"]


def test_statefulset_keeps_template_annotations_and_adds_the_owner() -> None:
    annotations = build_statefulset(plan())["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations[provenance.OPERATION] == f"{NAMESPACE}/{OWNER.name}"


def test_extra_labels_and_annotations_reach_every_object_but_never_override_provenance() -> None:
    p = plan(
        extra_labels={"env": "staging", provenance.CLUSTER: "hijack"},
        extra_annotations={"note": "copy"},
    )
    for obj in build_cluster(p):
        assert obj["metadata"]["labels"]["env"] == "staging"
        assert obj["metadata"]["labels"][provenance.CLUSTER] == "search-copy"
        assert obj["metadata"]["annotations"]["note"] == "copy"


def test_builders_never_mutate_the_source() -> None:
    p = plan(server_version="28.0", region="eu-west-1")
    before = copy.deepcopy((p.source, p.source_service))
    build_cluster(p)
    assert (p.source, p.source_service) == before


def test_builders_are_deterministic() -> None:
    p = plan(server_version="28.0", region="eu-west-1")
    assert build_cluster(p) == build_cluster(p)


def test_service_is_headless_with_the_target_selector_and_source_ports() -> None:
    svc_source = source_service()
    svc_source["spec"]["ports"][0]["nodePort"] = 30000
    svc_source["spec"]["publishNotReadyAddresses"] = True
    svc = build_service(plan(service=svc_source))
    assert svc["metadata"]["name"] == "search-copy"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {provenance.CLUSTER: "search-copy"}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8108, "targetPort": 8108}]
    assert svc["spec"]["publishNotReadyAddresses"] is True


def test_service_without_a_source_service_has_no_ports() -> None:
    svc = build_service(plan(service=False))
    assert "ports" not in svc["spec"]
    assert svc["spec"]["publishNotReadyAddresses"] is False


# --- PVCs ----------------------------------------------------------------------------------------


def test_pvc_names_follow_the_statefulset_scheme() -> None:
    p = plan(source_statefulset(claims=("data", "logs")))
    names = [pvc["metadata"]["name"] for pvc in build_pvcs(p)]
    assert names == [
        "data-search-copy-0",
        "data-search-copy-1",
        "data-search-copy-2",
        "logs-search-copy-0",
        "logs-search-copy-1",
        "logs-search-copy-2",
    ]


def test_pvc_names_honour_ordinals_start() -> None:
    sts = source_statefulset(replicas=2)
    sts["spec"]["ordinals"] = {"start": 5}
    p = plan(sts)
    assert list(p.ordinals) == [5, 6]
    pvcs = build_pvcs(p)
    assert [x["metadata"]["name"] for x in pvcs] == ["data-search-copy-5", "data-search-copy-6"]
    assert [x["spec"]["dataSource"]["name"] for x in pvcs] == [
        "data-search-5",
        "data-search-6",
    ]
    assert source_pvc_names(p) == ["data-search-5", "data-search-6"]


def test_each_pvc_clones_the_matching_source_pvc_at_its_size() -> None:
    sizes = {"data-search-0": "5Gi", "data-search-1": "6Gi", "data-search-2": "7Gi"}
    pvcs = build_pvcs(plan(source_pvc_sizes=sizes))
    for i, pvc in enumerate(pvcs):
        source = f"data-search-{i}"
        assert pvc["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": source}
        assert pvc["spec"]["resources"]["requests"]["storage"] == sizes[source]
        assert pvc["spec"]["storageClassName"] == "csi-hostpath"
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert pvc["metadata"]["annotations"][provenance.SOURCE] == f"{NAMESPACE}/{source}"


def test_pvcs_carry_the_labels_the_statefulset_controller_expects() -> None:
    p = plan()
    sts = build_statefulset(p)
    for pvc in build_pvcs(p):
        labels = pvc["metadata"]["labels"]
        assert labels["volume"] == "data"
        assert selectors.matches(sts["spec"]["selector"], labels)
        assert pvc["metadata"]["ownerReferences"] == [OWNER.reference()]


def test_pvcs_drop_selector_and_data_source_ref_of_the_template() -> None:
    sts = source_statefulset()
    tpl = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    tpl["selector"] = {"matchLabels": {"pv": "x"}}
    tpl["dataSourceRef"] = {"kind": "VolumeSnapshot", "name": "snap"}
    for pvc in build_pvcs(plan(sts)):
        assert "selector" not in pvc["spec"]
        assert "dataSourceRef" not in pvc["spec"]


def test_source_pvc_names_match_the_data_sources() -> None:
    p = plan(source_statefulset(claims=("data", "logs")))
    assert source_pvc_names(p) == [pvc["spec"]["dataSource"]["name"] for pvc in build_pvcs(p)]


def test_copy_method_none_builds_no_pvcs() -> None:
    p = plan(copy_method=CopyMethod.NONE, source_pvc_sizes={})
    assert build_pvcs(p) == []
    assert source_pvc_names(p) == []
    kinds = [o["kind"] for o in build_cluster(p)]
    assert kinds == ["Service", "StatefulSet"]


def test_a_missing_source_pvc_is_a_build_error() -> None:
    sizes = {"data-search-0": "1Gi", "data-search-2": "1Gi"}
    with pytest.raises(BuildError, match="data-search-1"):
        build_pvcs(plan(source_pvc_sizes=sizes))


def test_statefulset_without_claim_templates_needs_no_pvcs() -> None:
    p = plan(source_statefulset(claims=()), source_pvc_sizes={})
    assert build_pvcs(p) == []
    assert build_statefulset(p)["spec"]["volumeClaimTemplates"] == []


def test_replicas_default_to_one() -> None:
    sts = source_statefulset()
    del sts["spec"]["replicas"]
    p = plan(sts, source_pvc_sizes={"data-search-0": "1Gi"})
    assert p.replicas == 1
    assert [x["metadata"]["name"] for x in build_pvcs(p)] == ["data-search-copy-0"]


def test_build_cluster_creates_volumes_first() -> None:
    kinds = [o["kind"] for o in build_cluster(plan())]
    assert kinds == ["PersistentVolumeClaim"] * 3 + ["Service", "StatefulSet"]


# --- default names --------------------------------------------------------------------------------

UID = "8f14e45f-ceea-467f-a0e6-0123456789ab"


@pytest.mark.parametrize(
    "source",
    [
        "s",
        "search",
        "a" * 40,
        "a" * 41,
        "a" * 52,
        "a" * 63,
        "b" * 39 + "-" + "c" * 23,  # a dash right at the cut
        "x" * 38 + "--" + "y" * 23,
        "my-very-long-stateful-cluster-name-for-production-search",
    ],
)
def test_default_target_name_is_a_short_valid_dns_label(source: str) -> None:
    name = default_target_name(source, UID)
    assert len(name) <= STATEFULSET_NAME_MAX
    assert DNS_LABEL.match(name), name
    assert name.endswith("-clone-8f14e")
    assert not name.removesuffix("-clone-8f14e").endswith("-")
    assert name == default_target_name(source, UID)


def test_default_target_name_keeps_short_names_whole() -> None:
    assert default_target_name("search", UID) == "search-clone-8f14e"


def test_target_name_is_the_requested_one_else_the_default() -> None:
    assert target_name("copy", "search", UID) == "copy"
    assert (
        target_name(None, "search", UID) == target_name("", "search", UID) == "search-clone-8f14e"
    )


def test_default_target_name_differs_per_operation() -> None:
    other = "0c0ffee0-ceea-467f-a0e6-0123456789ab"
    long = "n" * 60
    assert default_target_name(long, UID) != default_target_name(long, other)


# --- scheduling rules that refer to the cluster's own pods ----------------------------------------


def test_pod_anti_affinity_of_the_clone_selects_the_clone_pods() -> None:
    sts = source_statefulset()
    sts["spec"]["template"]["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"app": "search"}},
                }
            ]
        }
    }
    target = build_statefulset(plan(sts))
    labels = target["spec"]["template"]["metadata"]["labels"]
    term = target["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ][0]
    assert selectors.matches(term["labelSelector"], labels)


def test_topology_spread_of_the_clone_selects_the_clone_pods() -> None:
    sts = source_statefulset()
    sts["spec"]["template"]["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "search"}},
        }
    ]
    target = build_statefulset(plan(sts))
    labels = target["spec"]["template"]["metadata"]["labels"]
    constraint = target["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert selectors.matches(constraint["labelSelector"], labels)


def test_a_volume_clone_of_zonal_volumes_pins_the_target_to_their_zones() -> None:
    """A clone stays in its source's zone: with `zones` (a VolumeClone of zonal volumes),
    every replica is pinned to them beside its region; without, it is not."""
    zonal = plan(region="us-east-1", zones=frozenset({"us-east-1b", "us-east-1a"}))
    pod_spec = build_statefulset(zonal)["spec"]["template"]["spec"]
    [term] = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert {e["key"]: e["values"] for e in term["matchExpressions"]} == {
        REGION_LABEL: ["us-east-1"],
        "topology.kubernetes.io/zone": ["us-east-1a", "us-east-1b"],
    }
    unpinned = build_statefulset(plan(region="us-east-1"))
    assert "topology.kubernetes.io/zone" not in json.dumps(unpinned)
