"""The identity rewrite and its guard: every place a reference to the source can hide,
and the names that only look like one."""

from __future__ import annotations

import base64
import copy
import statistics
import time
from typing import Any

import pytest

from clone_operator.builders import identity
from clone_operator.builders.identity import Identity, Rename

# The factories' shape: StatefulSet `search`, governing Service `search-headless`.
SOURCE = Identity("search", "search-headless", "shop")
TARGET = Identity("search-copy", "search-copy", "shop")
RENAME = Rename(SOURCE, TARGET)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The Typesense nodes list, fully qualified.
        (
            "search-0.search-headless.shop.svc.cluster.local:8107:8108,"
            "search-1.search-headless.shop.svc.cluster.local:8107:8108",
            "search-copy-0.search-copy.shop.svc.cluster.local:8107:8108,"
            "search-copy-1.search-copy.shop.svc.cluster.local:8107:8108",
        ),
        ("search-2.search-headless:8107", "search-copy-2.search-copy:8107"),
        ("search-2.search-headless.shop", "search-copy-2.search-copy.shop"),
        ("search-2.search-headless.shop.svc", "search-copy-2.search-copy.shop.svc"),
        (
            "http://search-0.search-headless.shop.svc.cluster.local.:8108/health",
            "http://search-copy-0.search-copy.shop.svc.cluster.local.:8108/health",
        ),
        # A pod's bare name (its hostname, a member name).
        (
            "--initial-cluster=search-0=http://search-0.search-headless:2380",
            "--initial-cluster=search-copy-0=http://search-copy-0.search-copy:2380",
        ),
        ("search-11", "search-copy-11"),
        # The governing Service's DNS name.
        ("search-headless.shop", "search-copy.shop"),
        ("search-headless.shop.svc:8108", "search-copy.shop.svc:8108"),
        (
            "seeds: search-headless.shop.svc.cluster.local",
            "seeds: search-copy.shop.svc.cluster.local",
        ),
        # DNS ignores case.
        ("SEARCH-1.SEARCH-HEADLESS.SHOP.SVC", "search-copy-1.search-copy.SHOP.SVC"),
        # A pod's own name from its environment, in the Service's zone (advertised
        # listeners, publish hosts): the clone pod's variable names the clone pod.
        (
            "--peering-address=$(POD_NAME).search-headless.shop.svc.cluster.local:9092",
            "--peering-address=$(POD_NAME).search-copy.shop.svc.cluster.local:9092",
        ),
        (
            "PLAINTEXT://${HOSTNAME}.search-headless.shop:9092",
            "PLAINTEXT://${HOSTNAME}.search-copy.shop:9092",
        ),
        ("$(POD_NAME).search-headless.shop.svc.", "$(POD_NAME).search-copy.shop.svc."),
        ("$(POD_NAME).search-headless", "$(POD_NAME).search-copy"),
        # SRV names in the Service's zone.
        (
            "_peers._tcp.search-headless.shop.svc.cluster.local",
            "_peers._tcp.search-copy.shop.svc.cluster.local",
        ),
        ("dns+srv:_grpc._tcp.SEARCH-HEADLESS.shop.svc", "dns+srv:_grpc._tcp.search-copy.shop.svc"),
        # A name inside template syntax is still a name.
        ("(search-0.search-headless)", "(search-copy-0.search-copy)"),
        # In YAML and JSON config files.
        (
            'peers: ["search-0.search-headless", "search-1.search-headless"]',
            'peers: ["search-copy-0.search-copy", "search-copy-1.search-copy"]',
        ),
    ],
)
def test_references_to_the_source_become_the_targets(text: str, expected: str) -> None:
    assert RENAME.text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "search-engine",  # merely contains the source's name
        "search-engine-0.search-headless",
        "xsearch-0.search-headless",
        "my-search-0",
        "search-0x",
        "search",  # the StatefulSet's bare name: an ordinary word too
        "search-headless",  # the Service's bare name: not rewritten (see the docstring)
        "search-0.search-headless.other.svc",  # the same names in another namespace
        "search-headless.other.svc.cluster.local",
        "a.search-headless.shop.svc",  # a longer name (the guard's business)
        "search-0.example.com",  # another host
        "search-0.search-headless.shop.svc.cluster.localhost",
        "search-headless.shopping",
        "search-headless.shop-eu.svc",
        "/var/lib/search/data",
        "index.search.slowlog: 10s",
    ],
)
def test_names_that_only_look_like_the_source_are_left_alone(text: str) -> None:
    assert RENAME.text(text) == text


def test_service_named_as_the_statefulset_and_another_cluster_domain() -> None:
    rename = Rename(
        Identity("db", "db", "prod", "corp.internal"),
        Identity("db2", "db2", "prod", "corp.internal"),
    )
    assert rename.text("db-0.db.prod.svc.corp.internal") == "db2-0.db2.prod.svc.corp.internal"
    assert rename.text("db.prod.svc.corp.internal") == "db2.prod.svc.corp.internal"
    assert rename.text("db") == "db"
    # Another cluster domain is another cluster: not this source.
    assert rename.text("db-0.db.prod.svc.cluster.local") == "db-0.db.prod.svc.cluster.local"


def test_the_rewrite_is_idempotent_when_the_target_starts_with_the_source() -> None:
    once = RENAME.text("search-0.search-headless.shop.svc,search-headless.shop,search-1")
    assert RENAME.text(once) == once


def test_base64_values_are_rewritten_when_they_are_text() -> None:
    encoded = base64.b64encode(b"nodes=search-0.search-headless:8107").decode()
    assert base64.b64decode(RENAME.base64(encoded)) == b"nodes=search-copy-0.search-copy:8107"
    binary = base64.b64encode(b"\xff\xfesearch-0.search-headless").decode()
    assert RENAME.base64(binary) == binary  # not UTF-8: left as it is (the guard scans it)
    plain = base64.b64encode(b"nothing to see").decode()
    assert RENAME.base64(plain) == plain


PEERS = "search-0.search-headless.shop.svc.cluster.local:8107:8108"
NEW_PEERS = "search-copy-0.search-copy.shop.svc.cluster.local:8107:8108"


def _container(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": "typesense/typesense:27.1",
        "command": ["/bin/server", f"--peer={PEERS}"],
        "args": ["--nodes", PEERS, "--name=search-0"],
        "env": [
            {"name": "NODES", "value": PEERS},
            {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "readinessProbe": {"exec": {"command": ["check", PEERS]}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8108}},
        "lifecycle": {"preStop": {"exec": {"command": ["leave", PEERS]}}},
    }


def test_every_place_in_a_pod_spec_is_rewritten_and_nothing_else() -> None:
    pod_spec = {
        "initContainers": [_container("init")],
        "containers": [_container("server")],
        "dnsConfig": {"searches": ["search-headless.shop.svc.cluster.local"]},
        "serviceAccountName": "search",
    }
    before = copy.deepcopy(pod_spec)
    out = identity.rewrite_pod_spec(pod_spec, RENAME)
    assert pod_spec == before, "the input must not change"
    for c in (out["initContainers"][0], out["containers"][0]):
        assert c["command"] == ["/bin/server", f"--peer={NEW_PEERS}"]
        assert c["args"] == ["--nodes", NEW_PEERS, "--name=search-copy-0"]
        assert c["env"][0] == {"name": "NODES", "value": NEW_PEERS}
        assert c["env"][1] == before["containers"][0]["env"][1]
        assert c["readinessProbe"]["exec"]["command"] == ["check", NEW_PEERS]
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["leave", NEW_PEERS]
        assert c["livenessProbe"] == before["containers"][0]["livenessProbe"]
        assert c["image"] == "typesense/typesense:27.1"
    assert out["dnsConfig"]["searches"] == ["search-copy.shop.svc.cluster.local"]
    assert out["serviceAccountName"] == "search"


def test_config_data_is_rewritten_text_and_base64() -> None:
    config_map = {
        "kind": "ConfigMap",
        "data": {"nodes": PEERS, "other": "search-engine"},
        "binaryData": {"nodes.bin": base64.b64encode(PEERS.encode()).decode()},
    }
    secret = {"kind": "Secret", "data": {"nodes": base64.b64encode(PEERS.encode()).decode()}}
    cm = identity.rewrite_data(config_map, RENAME)
    assert cm["data"] == {"nodes": NEW_PEERS, "other": "search-engine"}
    assert base64.b64decode(cm["binaryData"]["nodes.bin"]).decode() == NEW_PEERS
    assert base64.b64decode(identity.rewrite_data(secret, RENAME)["data"]["nodes"]) == (
        NEW_PEERS.encode()
    )


def _statefulset(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "search-copy"},
        "spec": {"template": {"metadata": {}, "spec": pod_spec}},
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("search-$(i).search-headless:8107", "search-$(i).search-headless"),
        ("search-{0..2}.search-headless.shop.svc", "search-{0..2}.search-headless.shop.svc"),
        ("search-%d.search-headless.shop.svc.cluster.local", None),
        ("api.search-headless.shop", None),
    ],
)
def test_the_guard_finds_forms_the_rewrite_does_not_know(value: str, shown: str | None) -> None:
    pod_spec = {"containers": [{"name": "s", "args": ["--peers", value]}]}
    built = _statefulset(identity.rewrite_pod_spec(pod_spec, RENAME))
    [finding] = identity.findings([built], RENAME)
    assert finding.path == "spec.template.spec.containers[0].args[1]"
    assert finding.text == (shown or value)
    assert str(finding).startswith("StatefulSet search-copy spec.template.spec.containers[0]")


def test_the_guard_finds_known_names_where_the_rewrite_does_not_go() -> None:
    pod_spec = {
        "containers": [
            {"name": "s", "readinessProbe": {"httpGet": {"host": "search-0.search-headless"}}}
        ],
        "hostAliases": [{"ip": "10.0.0.7", "hostnames": ["search-1.search-headless.shop"]}],
    }
    found = identity.findings([_statefulset(identity.rewrite_pod_spec(pod_spec, RENAME))], RENAME)
    assert [f.path for f in found] == [
        "spec.template.spec.containers[0].readinessProbe.httpGet.host",
        "spec.template.spec.hostAliases[0].hostnames[0]",
    ]


def test_the_guard_passes_a_rewritten_clone_and_hides_secret_content() -> None:
    clean = _statefulset(identity.rewrite_pod_spec({"containers": [_container("s")]}, RENAME))
    config_map = identity.rewrite_data(
        {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"nodes": PEERS}}, RENAME
    )
    assert identity.findings([clean, config_map], RENAME) == []
    leaked = base64.b64encode(b"seed=search-$(i).search-headless").decode()
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"seed.conf": leaked}}
    [finding] = identity.findings([secret], RENAME)
    assert (finding.path, finding.text) == ("data[seed.conf]", None)
    assert "search" not in str(finding).replace("Secret s", "")
    binary = {
        "kind": "ConfigMap",
        "metadata": {"name": "b"},
        "binaryData": {"x": base64.b64encode(b"\xff search-0.search-headless").decode()},
    }
    assert [f.path for f in identity.findings([binary], RENAME)] == ["binaryData.x"]


def test_the_guard_does_not_scan_volumes_that_name_their_source_on_purpose() -> None:
    pvc = {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-search-copy-0"},
        "spec": {"dataSource": {"name": "data-search-0"}},
    }
    assert identity.findings([pvc], RENAME) == []


def test_the_operators_own_metadata_never_produces_a_finding() -> None:
    """An operation named like a source pod (`search-0`), a target named like one
    (`search-1`): the provenance the operator writes is not the source's."""
    rename = Rename(SOURCE, Identity("search-1", "search-1", "shop"))
    template = {
        "metadata": {
            "labels": {"cloning.dev/cluster": "search-1", "app": "search"},
            "annotations": {"cloning.dev/operation": "shop/search-0"},
        },
        "spec": {
            "containers": [{"name": "s"}],
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"cloning.dev/cluster": "search-1"}}}
                    ]
                }
            },
        },
    }
    built = {
        "kind": "StatefulSet",
        "metadata": {"name": "search-1"},
        "spec": {"template": template},
    }
    assert identity.findings([built], rename) == []
    # The same value in a key the source wrote is the source's, and still found.
    template["metadata"]["annotations"]["peer"] = "search-0"
    [finding] = identity.findings([built], rename)
    assert finding.path == "spec.template.metadata.annotations.peer"


def test_an_srv_name_in_a_copied_config_map_is_rewritten_and_audited() -> None:
    source = {
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"seeds": f"_peers._tcp.{SOURCE.service}.shop.svc"},
    }
    copied = identity.rewrite_data(source, RENAME)
    assert copied["data"]["seeds"] == "_peers._tcp.search-copy.shop.svc"
    assert identity.findings([copied], RENAME) == []
    [audit] = identity.rewrites(
        "ConfigMap", "search-copy-c", source["data"], copied["data"], RENAME, "data"
    )
    assert str(audit) == (
        "ConfigMap search-copy-c data.seeds: '_peers._tcp.search-headless.shop.svc' → "
        "'_peers._tcp.search-copy.shop.svc'"
    )


def test_a_secrets_rewrite_is_audited_without_its_content() -> None:
    before = {"nodes": base64.b64encode(PEERS.encode()).decode()}
    after = {"nodes": RENAME.base64(before["nodes"])}
    [audit] = identity.rewrites("Secret", "s", before, after, RENAME, "data")
    assert (audit.before, audit.after) == (None, None)
    assert "search" not in str(audit).replace("Secret s", "")


@pytest.mark.parametrize(
    "value",
    [
        "data-0.search-headless.shop.svc.cluster.local",  # another StatefulSet's pod
        "master-2.search-headless.shop",
    ],
)
def test_a_literal_pod_of_another_statefulset_behind_the_service_is_refused(value: str) -> None:
    pod_spec = {"containers": [{"name": "s", "env": [{"name": "SEEDS", "value": value}]}]}
    built = _statefulset(identity.rewrite_pod_spec(pod_spec, RENAME))
    assert built["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == value
    [finding] = identity.findings([built], RENAME)
    assert finding.form is identity.Form.OTHER_IN_ZONE
    assert "another StatefulSet behind the same Service" in str(finding)


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 200_000,
        "a:" * 100_000,
        "a." * 100_000,
        "$(" * 100_000,
        "search-" * 30_000,
        ".search-headless.shop" * 10_000,
        "search-0.search-headless.shop " + "x" * 100_000 + "a." * 50_000,
    ],
    ids=["letters", "colons", "dots", "templates", "anchors", "zones", "mixed"],
)
def test_scanning_grows_linearly_with_the_input(hostile: str) -> None:
    """Ten times the text costs about ten times the time (a backtracking pattern cost a
    hundred times: 2 kB 0.04 s, 16 kB 1.9 s). A ratio, not a time: machines differ."""

    def cost(text: str) -> float:
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            RENAME.text(text)
            list(RENAME.references(text))
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)

    small, large = cost(hostile[: len(hostile) // 10]), cost(hostile)
    assert large < max(small, 1e-4) * 40, (small, large)


def test_a_finding_in_a_huge_value_shows_a_clipped_snippet() -> None:
    hostile = "x" * 100_000 + ".search-headless.shop"
    built = _statefulset({"containers": [{"name": "s", "args": [hostile]}]})
    [finding] = identity.findings([built], RENAME)
    assert finding.text is not None
    assert len(finding.text) <= identity.MAX_SHOWN + 1
    assert finding.text.endswith(".search-headless.shop")


def test_the_audit_fits_events_and_says_how_many_it_left_out() -> None:
    rewritten = [
        identity.Rewrite("StatefulSet", "s", f"spec.template.spec.containers[0].args[{i}]",
                         f"search-{i}.search-headless", f"search-copy-{i}.search-copy")
        for i in range(200)
    ]  # fmt: skip
    messages = identity.audit(rewritten, 1024, 5)
    assert len(messages) == 5
    assert all(len(m) <= 1024 for m in messages)
    assert messages[0].startswith("rewrote 200 references to the source: StatefulSet s spec")
    assert messages[-1].endswith("more)")
    assert identity.audit(rewritten[:1], 1024, 5) == [
        "rewrote 1 references to the source: StatefulSet s "
        "spec.template.spec.containers[0].args[0]: 'search-0.search-headless' → "
        "'search-copy-0.search-copy'"
    ]
    assert identity.audit([], 1024, 5) == []
