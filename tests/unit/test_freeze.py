"""The freeze state machine of consistency hooks: the post hook always runs."""

from __future__ import annotations

import pytest

from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    CopyMethod,
    FreezeStatus,
    Phase,
    PostHook,
)
from clone_operator.reconcile import freeze as rules
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.freeze import (
    Action,
    Freeze,
    OnError,
    Seen,
    Stage,
    record,
    step,
    thawed,
)
from tests.unit.factories import source_statefulset

DEADLINE = 600.0


def run(freeze: Freeze, seen: Seen, on_error: OnError = OnError.FAIL) -> tuple[Action, Freeze]:
    decision = step(freeze, seen, DEADLINE, on_error)
    return decision.action, decision.freeze


def test_the_happy_path_thaws_as_soon_as_the_cut_is_taken() -> None:
    action, f = run(Freeze(), Seen(now=0))
    assert (action, f.stage, f.started_at) == (Action.RUN_PRE_HOOKS, Stage.FREEZING, 0)
    # Found Freezing (its leader stopped mid-hook): the pre hooks run again, same start.
    assert run(f, Seen(now=1)) == (Action.RUN_PRE_HOOKS, f)
    action, f = run(f, Seen(now=2, pre_hooks_done=True))
    assert (action, f.stage) == (Action.TAKE_SNAPSHOTS, Stage.CUTTING)
    assert run(f, Seen(now=3))[0] is Action.WAIT  # not every snapshot has a creationTime
    action, f = run(f, Seen(now=4, cut_taken=True))  # readyToUse is not awaited
    assert (action, f.stage, f.failure) == (Action.RUN_POST_HOOKS, Stage.THAWING, None)
    assert run(thawed(f), Seen(now=5))[0] is Action.DONE


@pytest.mark.parametrize("stage", [Stage.FREEZING, Stage.CUTTING])
def test_the_post_hook_runs_on_failure_cancel_and_deadline(stage: Stage) -> None:
    frozen = Freeze(stage=stage, started_at=0)
    action, f = run(frozen, Seen(now=5, clone_ended="canceled"))
    assert (action, f.stage, f.failure) == (Action.RUN_POST_HOOKS, Stage.THAWING, "canceled")
    action, f = run(frozen, Seen(now=DEADLINE))
    assert (action, f.stage) == (Action.RUN_POST_HOOKS, Stage.THAWING)
    assert f.failure is not None
    assert f.failure.startswith("freeze deadline")


def test_a_failed_pre_hook_thaws_and_fails_or_goes_on() -> None:
    freezing = Freeze(stage=Stage.FREEZING, started_at=0)
    seen = Seen(now=1, pre_hooks_done=True, pre_hook_error="exit 1: flush failed")
    action, f = run(freezing, seen, OnError.FAIL)
    assert (action, f.failure) == (
        Action.RUN_POST_HOOKS,
        "the pre hook failed: exit 1: flush failed",
    )
    action, f = run(freezing, seen, OnError.CONTINUE)
    assert (action, f.stage) == (Action.TAKE_SNAPSHOTS, Stage.CUTTING)


def test_any_leader_resumes_a_freeze_and_runs_the_post_hook_again() -> None:
    """A leader killed while thawing: the next one runs the post hooks once more (at least
    once; hooks are idempotent), and never a second freeze."""
    thawing = Freeze(stage=Stage.THAWING, started_at=0, post_attempts=1)
    action, f = run(thawing, Seen(now=30))
    assert (action, f.post_attempts) == (Action.RUN_POST_HOOKS, 2)
    assert all(s.frozen for s in (Stage.FREEZING, Stage.CUTTING, Stage.THAWING))
    assert not Stage.IDLE.frozen
    assert not Stage.THAWED.frozen


def test_a_clone_that_ended_before_freezing_never_freezes() -> None:
    action, f = run(Freeze(), Seen(now=0, clone_ended="failed"))
    assert (action, f.stage) == (Action.DONE, Stage.THAWED)


# The freeze on a CloningOperation: recorded, told, owed.


def spec(**fields: object) -> CloningOperationSpec:
    return CloningOperationSpec.model_validate({"sourceCluster": "search", **fields})


HOOKS = {"pre": [{"command": ["pause"]}], "post": [{"command": ["resume"]}]}


def test_the_freeze_round_trips_through_the_status_with_its_condition() -> None:
    status = CloningOperationStatus(phase=Phase.IN_PROGRESS)
    cutting = Freeze(stage=Stage.CUTTING, started_at=1_764_669_600.0)  # 2025-12-02T10:00:00Z
    recorded = record(status, cutting, "2025-12-02T10:00:05Z", 1)
    assert recorded.freeze is not None
    assert recorded.freeze.started_at == "2025-12-02T10:00:00Z"
    assert rules.recorded(recorded.freeze) == cutting
    [quiesced] = [c for c in recorded.conditions if c.type == "Quiesced"]
    assert (quiesced.status, quiesced.reason) == ("True", "Quiesced")
    assert record(recorded, cutting, "2025-12-02T10:00:09Z", 1) is recorded  # unchanged
    done = record(recorded, thawed(cutting), "2025-12-02T10:00:07Z", 1)
    assert done.freeze is not None
    assert (done.freeze.stage, done.freeze.thawed_at) == (Stage.THAWED, "2025-12-02T10:00:07Z")
    [released] = [c for c in done.conditions if c.type == "Quiesced"]
    assert (released.status, released.reason) == ("False", "Thawed")
    failed_post = record(recorded, thawed(cutting), "t", 1, post_failure="peers-1: exit code 7")
    [told] = [c for c in failed_post.conditions if c.type == "Quiesced"]
    assert (told.reason, told.message) == ("HookFailed", "a post hook failed: peers-1: exit code 7")
    assert rules.recorded(None) == Freeze()


def test_a_freeze_is_owed_while_hooks_run_around_a_snapshot_and_a_thaw_after_the_end() -> None:
    hooked = spec(consistency=HOOKS, copyMethod="Snapshot")
    running = CloningOperationStatus(phase=Phase.IN_PROGRESS, copy_method=CopyMethod.SNAPSHOT)
    assert rules.owed(hooked, running)
    assert not rules.owed(spec(copyMethod="Snapshot"), running)  # no hooks
    thawed_status = running.model_copy(update={"freeze": FreezeStatus(stage=Stage.THAWED)})
    assert not rules.owed(hooked, thawed_status)
    for stage, owed in [(Stage.IDLE, False), (Stage.CUTTING, True), (Stage.THAWING, True)]:
        ended = CloningOperationStatus(phase=Phase.FAILED, freeze=FreezeStatus(stage=stage))
        assert rules.owed(hooked, ended) is owed, stage
    auto = spec(consistency=HOOKS)
    assert rules.hooks_refusal(auto, CopyMethod.SNAPSHOT) is None
    refusal = rules.hooks_refusal(auto, CopyMethod.VOLUME_CLONE)
    assert refusal is not None
    assert refusal.startswith("spec.consistency: hooks run around a snapshot's cut")
    assert rules.hooks_refusal(spec(), CopyMethod.VOLUME_CLONE) is None


def test_an_early_end_keeps_its_reason_across_a_restart() -> None:
    assert rules.failed_reason("freeze deadline: the cut was not taken within 600 s") == (
        Reason.FREEZE_DEADLINE_EXCEEDED
    )
    assert rules.failed_reason("the pre hook failed: peers-0: exit code 1") == Reason.HOOK_FAILED
    assert rules.failed_reason("timeout: the target was not ready") == Reason.TIMEOUT
    assert rules.failed_reason("the storage refused a snapshot: no space") == (
        Reason.STORAGE_REFUSED
    )


def test_hooks_run_in_every_ordinal_in_the_named_or_first_container() -> None:
    sts = source_statefulset(replicas=3)
    assert rules.hook_pods(sts) == ["search-0", "search-1", "search-2"]
    assert rules.hook_pods(source_statefulset(replicas=0)) == []
    hook = PostHook.model_validate({"command": ["true"]})
    first = sts["spec"]["template"]["spec"]["containers"][0]["name"]
    assert rules.container_of(hook, sts) == first
    named = PostHook.model_validate({"command": ["true"], "container": "sidecar"})
    assert rules.container_of(named, sts) == "sidecar"
    assert hook.timeout_seconds == 300  # not Velero's 30 s
    frozen = Freeze(stage=Stage.FREEZING, started_at=100.0)
    assert rules.freeze_left(frozen, 160.0, DEADLINE) == DEADLINE - 60
    assert rules.freeze_left(frozen, 10_000.0, DEADLINE) == 0
    assert rules.freeze_left(Freeze(), 5.0, DEADLINE) == DEADLINE
