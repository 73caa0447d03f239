"""One rule, by construction: the operator writes on a requester's behalf only what
admission checked — the declared kind, in the declared namespace, under the declared
name (or a target cluster's own parts, named from its name)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from clone_operator.api.cloneobjects import SourceKind
from clone_operator.api.policies import REQUIRED_RIGHTS, Where
from clone_operator.builders import objects
from clone_operator.builders.provenance import Owner
from clone_operator.reconcile import writes

ENGINE = Path(objects.__file__).resolve().parents[1] / "engine"
SERVICES = ENGINE.parent / "services"
OWNER = Owner(kind="CloneObject", name="kind-swap", namespace="team", uid="0000aaaa-1111")


def obj(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"namespace": namespace, "name": name},
    }


COPY = writes.copy("v1", "ConfigMap", "team", "pwn")
CLUSTER = writes.cluster("team", "search-clone-3f2a9")


@pytest.mark.parametrize(
    "written",
    [
        obj("apps/v1", "StatefulSet", "team", "pwn"),  # the kind swap
        obj("v1", "Secret", "team", "pwn"),
        obj("v1", "Service", "team", "pwn"),
        obj("v1", "Pod", "team", "pwn"),
        obj("cloning.dev/v1alpha1", "CloneObject", "team", "pwn"),
        obj("cloning.dev/v1alpha1", "CloningOperation", "team", "pwn"),
        obj("v2", "ConfigMap", "team", "pwn"),  # an apiVersion swap
        obj("v1", "Nope", "team", "pwn"),
        obj("v1", "ConfigMap", "kube-system", "pwn"),  # another namespace
        obj("v1", "ConfigMap", "team", "other"),  # another name
        {"kind": "ConfigMap", "metadata": {"name": "pwn"}},
    ],
)
def test_a_copy_may_write_its_declared_destination_and_nothing_else(
    written: dict[str, Any],
) -> None:
    assert writes.refusal(COPY, obj("v1", "ConfigMap", "team", "pwn")) is None
    why = writes.refusal(COPY, written)
    assert why is not None
    assert "not what admission checked" in why or "without apiVersion, kind or name" in why


@pytest.mark.parametrize(
    ("written", "allowed"),
    [
        (obj("apps/v1", "StatefulSet", "team", "search-clone-3f2a9"), True),
        (obj("v1", "Service", "team", "search-clone-3f2a9"), True),
        (obj("v1", "PersistentVolumeClaim", "team", "data-search-clone-3f2a9-0"), True),
        (obj("v1", "PersistentVolumeClaim", "team", "data-search-clone-3f2a9-12"), True),
        (obj("v1", "ConfigMap", "team", "search-clone-3f2a9-config"), True),
        (obj("v1", "Secret", "team", "search-clone-3f2a9-tls"), True),
        (obj("apps/v1", "StatefulSet", "team", "search"), False),  # the source
        (obj("v1", "PersistentVolumeClaim", "team", "data-search-0"), False),
        (obj("v1", "PersistentVolumeClaim", "team", "data-search-clone-3f2a9-x"), False),
        (obj("v1", "ConfigMap", "team", "search-clone-3f2a9"), False),
        (obj("v1", "Service", "other", "search-clone-3f2a9"), False),
        (obj("v1", "Pod", "team", "search-clone-3f2a9-0"), False),
        (obj("apps/v1", "Deployment", "team", "search-clone-3f2a9"), False),
    ],
)
def test_a_cluster_clone_may_write_its_own_parts(written: dict[str, Any], allowed: bool) -> None:
    assert (writes.refusal(CLUSTER, written) is None) is allowed


def test_the_cluster_parts_are_what_the_policies_require_creating() -> None:
    """The admitted table and the requester-rights policy cannot drift apart."""
    required = {
        (r.group, r.resource)
        for r in REQUIRED_RIGHTS[SourceKind.STATEFUL_SET]
        if r.verb == "create" and r.where is Where.DESTINATION
    }
    plural = {"StatefulSet": "statefulsets", "Service": "services", "ConfigMap": "configmaps",
              "Secret": "secrets", "PersistentVolumeClaim": "persistentvolumeclaims"}  # fmt: skip
    parts = {(v.rpartition("/")[0], plural[kind]) for v, kind, _ in writes.CLUSTER_PARTS}
    assert parts == required


@pytest.mark.parametrize(
    "overrides",
    [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"replicas": 1}},
        {"kind": "Secret"},
        {"apiVersion": "v2"},
        {"metadata": {"name": "elsewhere"}},
        {"metadata": {"namespace": "kube-system"}},
        {"metadata": {"ownerReferences": [{"uid": "x"}]}},
    ],
)
def test_overrides_change_a_copys_content_never_its_identity(overrides: dict[str, Any]) -> None:
    plan = objects.CopyPlan(
        owner=OWNER,
        source={"metadata": {"name": "seed", "namespace": "team"}, "data": {"a": "b"}},
        name="pwn",
        namespace="team",
        overrides=overrides,
    )
    with pytest.raises(objects.CopyError, match=r"options\.overrides must not set"):
        objects.build_copy(plan, SourceKind.CONFIG_MAP)


WRITE_VERBS = {"create", "delete", "merge_patch", "json_patch", "exec"}


def _direct_writes(module: Path) -> list[str]:
    """Calls in `module` that write through a Kube rather than the funnel: `<…kube>.create(`
    and the like, or a guarded patch handed a Kube."""
    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITE_VERBS:
            receiver = ast.unparse(func.value)
            if receiver.split(".")[-1] == "kube":
                found.append(f"{module.name}:{node.lineno} {ast.unparse(func)}")
        handed = ast.unparse(node.args[0]) if node.args else ""
        if isinstance(func, ast.Name) and func.id == "guarded_patch" and handed.endswith("kube"):
            found.append(f"{module.name}:{node.lineno} guarded_patch(kube, …)")
    return found


def test_every_write_of_a_clones_objects_passes_through_the_funnel() -> None:
    """The modules that make, hand over and remove clones write only through `Writes`;
    the engine modules that write with the operator's own Kube write only the operator's
    own objects (status, locks, Events, leases, certificates)."""
    clone_writers = [ENGINE / "clusters.py", ENGINE / "objects.py", ENGINE / "snapshots.py",
                     ENGINE / "hooks.py", ENGINE / "transfers.py"]  # fmt: skip
    assert [w for m in clone_writers for w in _direct_writes(m)] == []
    own_objects = {"engine/loop.py", "engine/operations.py", "engine/writes.py",
                   "engine/admission.py", "engine/lifecycle.py", "engine/context.py",
                   "engine/failures.py", "engine/__init__.py",
                   "engine/storage.py",  # it reads; its one write: a SubjectAccessReview
                   "services/election.py", "services/events.py", "services/certificates.py",
                   "services/delivery.py", "services/runtime.py", "services/metrics.py",
                   "services/memory.py", "services/retries.py", "services/__init__.py"}  # fmt: skip
    for module in [*ENGINE.glob("*.py"), *SERVICES.glob("*.py")]:
        name = f"{module.parent.name}/{module.name}"
        assert module in clone_writers or name in own_objects, (
            f"{name} is new: say whether it writes a clone's objects (then through "
            "engine.writes) or only the operator's own, and list it here"
        )


def test_hooks_exec_only_into_the_sources_own_pods() -> None:
    """A consistency hook is an exec (`create pods/exec`): admitted into `<source>-<n>` in
    the operation's namespace, never another StatefulSet's pods, another namespace, or a
    name that merely starts like the source's."""
    admitted = writes.hooks("shop", "search")
    ok = [writes.exec_target("shop", f"search-{n}") for n in (0, 2, 10)]
    assert [writes.refusal(admitted, o) for o in ok] == [None, None, None]
    refused = [
        writes.exec_target("other", "search-0"),
        writes.exec_target("shop", "search-clone-0"),
        writes.exec_target("shop", "search-"),
        writes.exec_target("shop", "search-x"),
        writes.exec_target("shop", "search"),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "shop", "name": "search-0"}},
    ]
    assert all(writes.refusal(admitted, o) is not None for o in refused)
    # A cluster clone's own table admits no exec at all.
    assert writes.refusal(writes.cluster("shop", "search-clone", "Snapshot"), ok[0]) is not None
