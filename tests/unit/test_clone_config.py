"""A clone's own config and overrides, built whole: copies, references, guard, provenance."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from clone_operator.builders import clusters, configs
from tests.unit import factories

NODES = ",".join(f"search-{i}.search-headless.shop.svc.cluster.local:8107:8108" for i in range(3))
CLONE_NODES = ",".join(
    f"search-copy-{i}.search-copy.shop.svc.cluster.local:8107:8108" for i in range(3)
)


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": factories.NAMESPACE,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "labels": {"app": "search"},
        },
        "data": data,
    }


def secret(name: str, data: dict[str, bytes], type_: str = "Opaque") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": factories.NAMESPACE, "uid": f"uid-{name}"},
        "type": type_,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def peered_source() -> dict[str, Any]:
    """The live test app's shape: the nodes list in a mounted ConfigMap file, an env var
    and args; plus a Secret by env, envFrom and projected volume, and an init container."""
    source = factories.source_statefulset()
    pod = source["spec"]["template"]["spec"]
    pod["containers"][0].update(
        args=["--nodes", NODES, "--data-dir=/data"],
        env=[
            {"name": "NODES", "value": NODES},
            {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "api", "key": "key"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "modes", "key": "m"}}},
        ],
        envFrom=[
            {"configMapRef": {"name": "modes"}},
            {"secretRef": {"name": "extra", "optional": True}},
        ],
        volumeMounts=[{"name": "nodes", "mountPath": "/etc/nodes"}],
    )
    pod["initContainers"] = [
        {
            "name": "wait",
            "image": "busybox",
            "command": ["sh", "-c", f"ping {NODES}"],
            "envFrom": [{"secretRef": {"name": "api"}}],
        }
    ]
    pod["volumes"] = [
        {"name": "nodes", "configMap": {"name": "search-config"}},
        {"name": "tls", "secret": {"secretName": "tls"}},
        {
            "name": "all",
            "projected": {
                "sources": [
                    {"configMap": {"name": "search-config"}},
                    {"secret": {"name": "api"}},
                    {"serviceAccountToken": {"path": "token"}},
                ]
            },
        },
        {"name": "sa", "secret": {"secretName": "legacy-token"}},
    ]
    pod["imagePullSecrets"] = [{"name": "registry"}]
    pod["serviceAccountName"] = "search"
    return source


def found() -> dict[tuple[str, str], dict[str, Any] | None]:
    return {
        ("ConfigMap", "search-config"): config_map("search-config", {"nodes": NODES}),
        ("ConfigMap", "modes"): config_map("modes", {"m": "cluster"}),
        ("Secret", "api"): secret("api", {"key": b"s3cret", "peers": NODES.encode()}),
        ("Secret", "tls"): secret("tls", {"tls.crt": b"\x30\x82\x01"}),
        ("Secret", "extra"): None,  # optional, missing
        ("Secret", "legacy-token"): secret(
            "legacy-token", {"token": b"t"}, "kubernetes.io/service-account-token"
        ),
    }


def build(**kw: Any) -> list[dict[str, Any]]:
    return clusters.build_cluster(factories.plan(peered_source(), source_configs=found(), **kw))


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_references_are_found_everywhere_a_pod_spec_can_name_config() -> None:
    refs = configs.references(peered_source()["spec"]["template"]["spec"])
    assert [(r.kind, r.name, r.path, r.optional) for r in refs] == [
        ("ConfigMap", "search-config", "spec.template.spec.volumes[0].configMap.name", False),
        ("Secret", "tls", "spec.template.spec.volumes[1].secret.secretName", False),
        (
            "ConfigMap",
            "search-config",
            "spec.template.spec.volumes[2].projected.sources[0].configMap.name",
            False,
        ),
        ("Secret", "api", "spec.template.spec.volumes[2].projected.sources[1].secret.name", False),
        ("Secret", "legacy-token", "spec.template.spec.volumes[3].secret.secretName", False),
        ("Secret", "api", "spec.template.spec.initContainers[0].envFrom[0].secretRef.name", False),
        (
            "Secret",
            "api",
            "spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef.name",
            False,
        ),
        (
            "ConfigMap",
            "modes",
            "spec.template.spec.containers[0].env[2].valueFrom.configMapKeyRef.name",
            False,
        ),
        (
            "ConfigMap",
            "modes",
            "spec.template.spec.containers[0].envFrom[0].configMapRef.name",
            False,
        ),
        ("Secret", "extra", "spec.template.spec.containers[0].envFrom[1].secretRef.name", True),
    ]


def test_the_clone_gets_its_own_rewritten_copies_and_points_at_them() -> None:
    objects = build()
    kinds = [o["kind"] for o in objects]
    assert sorted(kinds[:4]) == ["ConfigMap", "ConfigMap", "Secret", "Secret"], "config first"
    assert kinds[-1] == "StatefulSet"
    maps, secrets = by_kind(objects, "ConfigMap"), by_kind(objects, "Secret")
    assert sorted(maps) == ["search-copy-modes", "search-copy-search-config"]
    assert sorted(secrets) == ["search-copy-api", "search-copy-tls"]
    assert maps["search-copy-search-config"]["data"] == {"nodes": CLONE_NODES}
    api = {k: base64.b64decode(v).decode() for k, v in secrets["search-copy-api"]["data"].items()}
    assert api == {"key": "s3cret", "peers": CLONE_NODES}
    assert secrets["search-copy-tls"]["data"] == found()[("Secret", "tls")]["data"]  # type: ignore[index]

    pod = by_kind(objects, "StatefulSet")["search-copy"]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["args"] == ["--nodes", CLONE_NODES, "--data-dir=/data"]
    assert server["env"][0]["value"] == CLONE_NODES
    assert server["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "search-copy-api"
    assert server["env"][2]["valueFrom"]["configMapKeyRef"]["name"] == "search-copy-modes"
    assert server["envFrom"] == [
        {"configMapRef": {"name": "search-copy-modes"}},
        {"secretRef": {"name": "search-copy-extra", "optional": True}},  # made by no one
    ]
    assert pod["initContainers"][0]["command"][2] == f"ping {CLONE_NODES}"
    assert pod["initContainers"][0]["envFrom"] == [{"secretRef": {"name": "search-copy-api"}}]
    assert [
        v.get("configMap") or v.get("secret") or v.get("projected") for v in pod["volumes"]
    ] == [
        {"name": "search-copy-search-config"},
        {"secretName": "search-copy-tls"},
        {
            "sources": [
                {"configMap": {"name": "search-copy-search-config"}},
                {"secret": {"name": "search-copy-api"}},
                {"serviceAccountToken": {"path": "token"}},
            ]
        },
        {"secretName": "legacy-token"},  # shared: the API server fills it in
    ]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["serviceAccountName"] == "search"


def test_copies_carry_the_targets_provenance_and_nothing_of_the_servers() -> None:
    copy = by_kind(build(), "ConfigMap")["search-copy-search-config"]
    meta = copy["metadata"]
    assert meta["namespace"] == factories.NAMESPACE
    assert "uid" not in meta
    assert "resourceVersion" not in meta
    assert meta["labels"]["app"] == "search"
    assert meta["labels"]["cloning.dev/operation-uid"] == factories.OWNER.uid
    assert meta["labels"]["cloning.dev/cluster"] == "search-copy"
    assert meta["annotations"]["cloning.dev/source"] == "shop/ConfigMap/search-config"
    assert meta["annotations"]["cloning.dev/source-uid"] == "uid-search-config"
    assert meta["ownerReferences"] == [factories.OWNER.reference()]


def test_a_required_reference_to_a_missing_object_is_refused() -> None:
    missing = found()
    missing[("ConfigMap", "modes")] = None
    with pytest.raises(clusters.BuildError, match=r"env\[2\].valueFrom.configMapKeyRef.name"):
        clusters.build_cluster(factories.plan(peered_source(), source_configs=missing))


def test_the_guard_refuses_what_the_rewrite_left_and_names_the_path() -> None:
    source = peered_source()
    source["spec"]["template"]["spec"]["containers"][0]["args"].append(
        "--seed=search-$(ORDINAL).search-headless:8107"
    )
    data = found()
    data[("ConfigMap", "modes")] = config_map("modes", {"m": "master-0.search-headless.shop.svc"})
    with pytest.raises(clusters.SourceReferenced) as raised:
        clusters.build_cluster(factories.plan(source, source_configs=data))
    assert [(f.kind, f.name, f.path) for f in raised.value.findings] == [
        ("ConfigMap", "search-copy-modes", "data.m"),
        ("StatefulSet", "search-copy", "spec.template.spec.containers[0].args[3]"),
    ]
    assert "spec.template.spec.containers[0].args[3]: 'search-$(ORDINAL).search-headless'" in str(
        raised.value
    )


def test_a_name_collision_between_copies_cannot_happen_and_long_names_fit() -> None:
    assert configs.copy_name("t", "a") == "t-a"
    long = configs.copy_name("t" * 52, "c" * 253)
    assert len(long) == 253
    assert long != configs.copy_name("t" * 52, "c" * 252 + "d")


OVERRIDES = {
    "metadata": {"labels": {"purpose": "staging"}},
    "spec": {"replicas": 1, "template": {"spec": {"terminationGracePeriodSeconds": 5}}},
}


def test_target_overrides_apply_after_the_build_and_keep_provenance() -> None:
    sts = build(statefulset_overrides=OVERRIDES)[-1]
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 5
    assert sts["metadata"]["labels"]["purpose"] == "staging"
    assert sts["spec"]["template"]["spec"]["containers"][0]["args"][1] == CLONE_NODES

    sneaky = {"metadata": {"labels": {"cloning.dev/operation-uid": None}}}
    sts = build(statefulset_overrides=sneaky)[-1]
    assert sts["metadata"]["labels"]["cloning.dev/operation-uid"] == factories.OWNER.uid
    assert sts["metadata"]["ownerReferences"] == [factories.OWNER.reference()]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spec": {"selector": {"matchLabels": {"app": "search"}}}}, "spec.selector"),
        ({"spec": {"serviceName": "search-headless"}}, "spec.serviceName"),
        ({"spec": {"volumeClaimTemplates": None}}, "spec.volumeClaimTemplates"),
        ({"metadata": {"name": "other", "namespace": "x"}}, "metadata.name, metadata.namespace"),
        ({"kind": "Pod"}, "kind"),
        ({"apiVersion": "v1", "kind": "Secret"}, "apiVersion, kind"),
        ({"metadata": {"ownerReferences": None}}, "metadata.ownerReferences"),
        ({"metadata": {"finalizers": ["x/y"]}}, "metadata.finalizers"),
        (
            {"spec": {"template": {"metadata": {"labels": {"app": "search"}}}}},
            "the source StatefulSet's selector would select the clone's pods",
        ),
        ({"spec": None}, "must not remove metadata or spec"),
    ],
)
def test_overrides_cannot_break_the_clones_identity(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(clusters.BuildError, match=message.replace(".", r"\.")):
        build(statefulset_overrides=overrides)


def test_overrides_that_bring_the_source_back_are_caught_by_the_guard() -> None:
    container = {"name": "server", "image": "x", "args": ["--peer=search-0.search-headless"]}
    overrides = {"spec": {"template": {"spec": {"containers": [container]}}}}
    with pytest.raises(clusters.SourceReferenced, match=r"containers\[0\]\.args\[0\]"):
        build(statefulset_overrides=overrides)


def test_identity_overrides_are_refused_before_anything_is_built() -> None:
    plan = factories.plan(statefulset_overrides={"spec": {"serviceName": "x"}})
    with pytest.raises(clusters.BuildError, match=r"spec\.serviceName"):
        clusters.check(plan)
    clusters.check(dataclasses.replace(plan, statefulset_overrides=OVERRIDES))
