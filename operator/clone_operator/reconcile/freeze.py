"""The freeze of a consistent snapshot copy: pre hooks, the cut, post hooks. Pure.

Not wired yet (no `spec.consistency` in the API, no exec client): this is the
state machine the engine will drive, kept apart so that every path is tested
without pods that can exec (kwok pods cannot).

The freeze is state on the resource (`Freeze`, in its status), written before each
step, so that any leader resumes it: a leader that finds a freeze begun and not
thawed runs the post hooks — after the cut, on failure, on cancel, at the
freeze deadline, and after the previous leader was killed mid-freeze. The post
hooks therefore run at least once (hooks must be idempotent: a thaw of a thawed
application must be harmless), and never before the cut while the clone still
goes on. The freeze ends as soon as the cut is taken (every snapshot has a
`creationTime`), not when the snapshots are `readyToUse` (which may take minutes).

    Idle ─pre hooks─▶ Freezing ─pre hooks done: snapshots requested─▶ Cutting
      Freezing|Cutting ─cut taken | failure | cancel | deadline─▶ Thawing
      Thawing ─post hooks ran─▶ Thawed
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Stage(StrEnum):
    IDLE = "Idle"
    FREEZING = "Freezing"
    CUTTING = "Cutting"
    THAWING = "Thawing"
    THAWED = "Thawed"

    @property
    def frozen(self) -> bool:
        """The application may be paused: the post hooks are owed."""
        return self in (Stage.FREEZING, Stage.CUTTING, Stage.THAWING)


class OnError(StrEnum):
    """What a failed pre hook does (Velero's `onError`)."""

    FAIL = "Fail"  # thaw, and fail the clone
    CONTINUE = "Continue"  # go on to the cut


@dataclass(frozen=True)
class Freeze:
    """The freeze as recorded on the resource."""

    stage: Stage = Stage.IDLE
    started_at: float | None = None
    """When the pre hooks began (seconds; the deadline counts from here)."""
    failure: str | None = None
    """Why the freeze ends early (a hook, the deadline, a failure or cancel of the clone)."""
    post_attempts: int = 0


@dataclass(frozen=True)
class Seen:
    """What the engine observed this look."""

    now: float
    pre_hooks_done: bool = False
    """Every pre hook finished (in every pod it runs in)."""
    pre_hook_error: str | None = None
    cut_taken: bool = False
    """Every snapshot has a creationTime."""
    clone_ended: str | None = None
    """The clone failed or was canceled meanwhile (why)."""


class Action(StrEnum):
    RUN_PRE_HOOKS = "RunPreHooks"
    TAKE_SNAPSHOTS = "TakeSnapshots"
    WAIT = "Wait"
    RUN_POST_HOOKS = "RunPostHooks"
    DONE = "Done"


@dataclass(frozen=True)
class Decision:
    action: Action
    freeze: Freeze
    """The freeze to record *before* the action is taken."""


def step(freeze: Freeze, seen: Seen, deadline_seconds: float, on_error: OnError) -> Decision:
    """The next action and the freeze to record first."""
    if freeze.stage is Stage.THAWED:
        return Decision(Action.DONE, freeze)
    if freeze.stage is Stage.THAWING:
        return Decision(
            Action.RUN_POST_HOOKS, replace(freeze, post_attempts=freeze.post_attempts + 1)
        )
    if freeze.stage is Stage.IDLE:
        if seen.clone_ended:
            return Decision(Action.DONE, replace(freeze, stage=Stage.THAWED))  # never froze
        return Decision(
            Action.RUN_PRE_HOOKS, replace(freeze, stage=Stage.FREEZING, started_at=seen.now)
        )
    thaw = _why_thaw(freeze, seen, deadline_seconds, on_error)
    if thaw is not None:
        failure = None if thaw == "" else thaw
        return Decision(
            Action.RUN_POST_HOOKS,
            replace(freeze, stage=Stage.THAWING, failure=failure, post_attempts=1),
        )
    if freeze.stage is Stage.FREEZING:
        if seen.pre_hooks_done:
            return Decision(Action.TAKE_SNAPSHOTS, replace(freeze, stage=Stage.CUTTING))
        return Decision(Action.WAIT, freeze)
    return Decision(Action.WAIT, freeze)  # Cutting: until every snapshot has a creationTime


def _why_thaw(freeze: Freeze, seen: Seen, deadline_seconds: float, on_error: OnError) -> str | None:
    """Why the freeze ends now: "" for the cut taken (success), a reason for a failure,
    None to stay frozen."""
    if seen.clone_ended:
        return seen.clone_ended
    if seen.pre_hook_error and on_error is OnError.FAIL and freeze.stage is Stage.FREEZING:
        return f"the pre hook failed: {seen.pre_hook_error}"
    if freeze.stage is Stage.CUTTING and seen.cut_taken:
        return ""
    started = freeze.started_at if freeze.started_at is not None else seen.now
    if seen.now - started >= deadline_seconds:
        what = (
            "the cut was not taken"
            if freeze.stage is Stage.CUTTING
            else "the pre hooks did not finish"
        )
        return f"freeze deadline: {what} within {deadline_seconds:g} s"
    return None


def thawed(freeze: Freeze) -> Freeze:
    """The freeze once the post hooks ran (whatever they answered: a failed post hook is
    reported, never retried into a second freeze)."""
    return replace(freeze, stage=Stage.THAWED)
