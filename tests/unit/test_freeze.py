"""The freeze state machine of consistency hooks: the post hook always runs."""

from __future__ import annotations

import pytest

from clone_operator.reconcile.freeze import Action, Freeze, OnError, Seen, Stage, step, thawed

DEADLINE = 600.0


def run(freeze: Freeze, seen: Seen, on_error: OnError = OnError.FAIL) -> tuple[Action, Freeze]:
    decision = step(freeze, seen, DEADLINE, on_error)
    return decision.action, decision.freeze


def test_the_happy_path_thaws_as_soon_as_the_cut_is_taken() -> None:
    action, f = run(Freeze(), Seen(now=0))
    assert (action, f.stage, f.started_at) == (Action.RUN_PRE_HOOKS, Stage.FREEZING, 0)
    assert run(f, Seen(now=1))[0] is Action.WAIT  # pre hooks still running
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
