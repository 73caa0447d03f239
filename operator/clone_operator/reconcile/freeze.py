"""The freeze of a consistent snapshot copy: pre hooks, the cut, post hooks. Pure.

The state machine `engine.hooks` drives for `spec.consistency`, kept apart so that
every path is tested without pods that can exec (kwok pods cannot).

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

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    CopyMethod,
    FreezeStage,
    FreezeStatus,
    HookOnError,
    PostHook,
)
from clone_operator.api.common import parse_rfc3339, rfc3339
from clone_operator.reconcile.conditions import Reason, set_condition

Stage = FreezeStage
OnError = HookOnError


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
        # The pre hooks run within one step: a freeze found begun and not done is one whose
        # leader stopped mid-hook. They run again (idempotent), within the same deadline.
        return Decision(Action.RUN_PRE_HOOKS, freeze)
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


# The freeze on a CloningOperation: its status, its condition, who runs the hooks where.


def recorded(status: FreezeStatus | None) -> Freeze:
    """The freeze as the status records it (Idle when it has none)."""
    if status is None:
        return Freeze()
    started = parse_rfc3339(status.started_at).timestamp() if status.started_at else None
    return Freeze(status.stage, started, status.failure, status.post_attempts)


def record(
    status: CloningOperationStatus,
    freeze: Freeze,
    now: str,
    generation: int | None,
    post_failure: str | None = None,
) -> CloningOperationStatus:
    """The status with `freeze` recorded, and the `Quiesced` condition that tells it."""
    before = status.freeze or FreezeStatus()
    started = (
        rfc3339(datetime.fromtimestamp(freeze.started_at, UTC))
        if freeze.started_at is not None
        else None
    )
    written = FreezeStatus(
        stage=freeze.stage,
        started_at=before.started_at or started,
        thawed_at=now if freeze.stage is Stage.THAWED else before.thawed_at,
        failure=freeze.failure[:1024] if freeze.failure else None,
        post_attempts=freeze.post_attempts,
        post_failure=(post_failure or before.post_failure or "")[:1024] or None,
    )
    if written == status.freeze:
        return status
    frozen, reason, message = _quiesced(written)
    conditions = set_condition(
        status.conditions, "Quiesced", frozen, reason, message, now, generation
    )
    return status.model_copy(
        update={"freeze": written, "conditions": conditions, "updated_at": now}
    )


def _quiesced(freeze: FreezeStatus) -> tuple[bool, str, str]:
    if freeze.stage is Stage.FREEZING:
        return True, "Freezing", "the pre hooks run in the source's pods"
    if freeze.stage is Stage.CUTTING:
        return True, Reason.QUIESCED.value, "the source is quiesced; the snapshots are being cut"
    if freeze.stage is Stage.THAWING:
        why = f" ({freeze.failure})" if freeze.failure else ""
        return True, "Thawing", f"the post hooks run in the source's pods{why}"
    if freeze.post_failure:
        return False, Reason.HOOK_FAILED.value, f"a post hook failed: {freeze.post_failure}"
    if freeze.started_at is None:
        return False, Reason.THAWED.value, "the source was never quiesced"
    why = f" early: {freeze.failure}" if freeze.failure else " after the cut"
    return False, Reason.THAWED.value, f"the source was released{why}"


def owed(spec: CloningOperationSpec, status: CloningOperationStatus) -> bool:
    """Whether the freeze still has work to do: hooks are set, the copy is a snapshot, and
    the post hooks have not run yet (or no freeze began and the clone still goes on)."""
    if spec.consistency is None:
        return False
    stage = status.freeze.stage if status.freeze is not None else Stage.IDLE
    if status.phase is not None and status.phase.terminal:
        return stage.frozen  # only a thaw is owed once the operation ended
    method = status.copy_method or spec.copy_method
    return method.snapshots and stage is not Stage.THAWED


def hooks_refusal(spec: CloningOperationSpec, method: CopyMethod) -> str | None:
    """Why hooks cannot run around this copy (Auto resolved to a copy without a cut)."""
    if spec.consistency is None or method.snapshots:
        return None
    return (
        f"spec.consistency: hooks run around a snapshot's cut, and copyMethod "
        f"{spec.copy_method.value} would copy by {method.value} here, which takes no snapshot "
        "(the storage, or the requester's rights, allow no VolumeSnapshot of these volumes); "
        "remove the hooks, or make snapshots possible"
    )


def failed_reason(failure: str | None) -> Reason:
    """The operation's Reason when the freeze ended early (by the failure's first words,
    as the engine writes them: the reason survives a restart with the freeze)."""
    text = failure or ""
    if text.startswith("freeze deadline"):
        return Reason.FREEZE_DEADLINE_EXCEEDED
    if text.startswith("timeout"):
        return Reason.TIMEOUT
    if text.startswith("the storage refused"):
        return Reason.STORAGE_REFUSED
    return Reason.HOOK_FAILED


def hook_pods(statefulset: Mapping[str, Any]) -> list[str]:
    """The pods the hooks run in: every ordinal of the source StatefulSet."""
    name = str(statefulset["metadata"]["name"])
    replicas = (statefulset.get("spec") or {}).get("replicas")
    count = 1 if replicas is None else int(replicas)
    return [f"{name}-{i}" for i in range(count)]


def container_of(hook: PostHook, statefulset: Mapping[str, Any]) -> str | None:
    """The hook's container: the one it names, else the pod template's first."""
    if hook.container:
        return hook.container
    template = ((statefulset.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or []
    return str(containers[0]["name"]) if containers else None


def freeze_left(freeze: Freeze, now: float, deadline_seconds: float) -> float:
    """Seconds until the freeze deadline (0 when past, the whole deadline before it began)."""
    if freeze.started_at is None:
        return deadline_seconds
    return max(deadline_seconds - (now - freeze.started_at), 0.0)
