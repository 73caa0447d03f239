"""Admission rules the CRD's CEL cannot express: each problem names its field."""

from __future__ import annotations

from typing import Any

from clone_operator.api.cloningoperations import CloningOperationSpec
from clone_operator.reconcile.admission import OperationFacts, operation_problems
from clone_operator.reconcile.regions import RegionTable

REGIONS = RegionTable(frozenset({"us-east-1", "us-west-2"}), {"oregon": "us-west-2"})


def facts(**kw: Any) -> OperationFacts:
    base: dict[str, Any] = {
        "namespace": "ns",
        "source_exists": True,
        "source_containers": ("server",),
        "active": (),
        "regions": REGIONS,
        "target_taken_by_other": False,
    }
    return OperationFacts(**{**base, **kw})


def spec(**kw: Any) -> CloningOperationSpec:
    return CloningOperationSpec.model_validate({"sourceCluster": "db", **kw})


def test_a_sound_operation_has_no_problem() -> None:
    assert operation_problems(spec(targetRegion="oregon", serverContainer="server"), facts()) == []


def test_each_problem_names_its_field() -> None:
    problems = operation_problems(
        spec(targetRegion="mars", serverContainer="nope", targetName="taken"),
        facts(active=(("first", "InProgress"),), target_taken_by_other=True),
    )
    assert [p.split(":")[0] for p in problems] == [
        "spec.sourceCluster",
        "spec.targetRegion",
        "spec.serverContainer",
        "spec.targetName",
    ]
    assert "operation first is already InProgress for cluster db" in problems[0]
    assert "valid regions: oregon, us-east-1, us-west-2" in problems[1]


def test_missing_source_is_reported_once_without_container_noise() -> None:
    problems = operation_problems(
        spec(serverContainer="x"), facts(source_exists=False, source_containers=())
    )
    assert problems == ["spec.sourceCluster: StatefulSet ns/db does not exist"]


def test_problems_of_the_built_target_are_reported_after_the_rest() -> None:
    found = (
        "spec.sourceCluster: the clone would still refer to its source: StatefulSet db-clone-00000 "
        "spec.template.spec.containers[0].args[1]: 'db-$(i).db'",
    )
    problems = operation_problems(spec(targetRegion="mars"), facts(target_problems=found))
    assert [p.split(":")[0] for p in problems] == ["spec.targetRegion", "spec.sourceCluster"]
    assert problems[-1] == found[0]


def test_a_timeout_above_the_operator_maximum_is_refused_at_apply() -> None:
    asked = spec(timeoutSeconds=7200)
    assert operation_problems(asked, facts()) == []  # not checked without the setting
    assert operation_problems(asked, facts(max_timeout_seconds=7200)) == []
    [problem] = operation_problems(asked, facts(max_timeout_seconds=3600))
    assert problem.startswith("spec.timeoutSeconds: 7200 is more than this operator allows")
    assert "(maxTimeoutSeconds: 3600)" in problem


def test_the_storage_refusal_is_pickups_own_words_under_the_copy_method_field() -> None:
    """The webhook asks the very decision pickup makes (`reconcile.storage.choose`) and
    refuses with its message, naming the field; nothing of its own."""
    from clone_operator.reconcile import storage

    east_a = storage.Place(frozenset({"us-east-1"}), frozenset({"us-east-1a"}))
    volume = storage.Volume("data-db-0", "zonal", "disk.csi.example.com", True, east_a)
    refused = None
    try:
        storage.choose(
            storage.CopyMethod.VOLUME_CLONE,
            storage.Facts((volume,), None, None, {}),
            "us-east-1",
            "us-west-2",
        )
    except storage.Refused as e:
        refused = str(e)
    assert refused is not None
    problems = operation_problems(
        spec(targetRegion="us-west-2", copyMethod="VolumeClone"), facts(storage_refusal=refused)
    )
    assert problems == [f"spec.copyMethod: {refused}"]
    assert "StorageClass zonal keeps its volumes in zone us-east-1a of region us-east-1" in refused
    assert operation_problems(spec(copyMethod="VolumeClone"), facts()) == []
