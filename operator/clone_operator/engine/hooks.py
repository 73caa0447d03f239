"""Consistency hooks around a snapshot copy's cut (`spec.consistency`), one step at a time.

Drives the pure freeze state machine (`reconcile.freeze`): the freeze is recorded in
`status.freeze` *before* each action, so whichever replica leads next resumes it:

    pre hooks in every source pod ─▶ the snapshots requested ─▶ each has a creationTime
      ─▶ post hooks in every source pod ─▶ Thawed (then engine.clusters restores the target)

The freeze ends as soon as the cut is taken, not when the snapshots are readyToUse.
The post hooks always run once a freeze began: after the cut, when a pre hook fails
(`onError: Fail`), when the storage refuses a snapshot, at the freeze deadline, at the
operation's timeout, when the operation failed for any other reason (`thaw_ended`, from
its terminal step), and after a leader was replaced mid-freeze. So they run at least
once, maybe twice: hooks must be idempotent.

A hook is an exec into a source pod, through the write funnel (`engine.writes`): admitted
only into `<source>-<ordinal>`, because the requester's `create pods/exec` was checked
at admission (api.policies). Pods run their hooks at once; each pod its hooks in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    Consistency,
    HookOnError,
    PostHook,
    PreHook,
)
from clone_operator.api.common import now_rfc3339
from clone_operator.engine import clusters, loop, snapshots
from clone_operator.engine.context import Context
from clone_operator.engine.loop import AGAIN, ObjectLog
from clone_operator.engine.writes import Writes
from clone_operator.k8s.api import JSON, ApiError, NotLeading
from clone_operator.kube.streams import Result
from clone_operator.reconcile import clusters as cluster_rules
from clone_operator.reconcile import freeze as rules
from clone_operator.reconcile import volumes as volume_rules
from clone_operator.reconcile import writes
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.freeze import Action, Freeze, Seen, Stage

POLL_SECONDS = 1.0
"""How often a cut is looked at while the source is frozen (every second counts there)."""
MAX_FAILURE_EVENTS = 5
"""Warning Events for failed hooks, at most, per run of the hooks (then one summary)."""


@dataclass(frozen=True)
class Frozen:
    """The freeze goes on: look again after `wait` seconds (or at a watch event)."""

    wait: float


@dataclass(frozen=True)
class Ended:
    """The post hooks ran (or no freeze was needed). With a `reason`, the operation fails
    with it and `message` (`body`: the operation as last written)."""

    body: JSON
    reason: Reason | None = None
    message: str = ""


@dataclass(frozen=True)
class Ran:
    """One hook in one pod."""

    pod: str
    index: int
    result: Result
    seconds: float


async def drive(
    ctx: Context,
    body: JSON,
    spec: CloningOperationSpec,
    status: CloningOperationStatus,
    target: clusters.Target,
    log: ObjectLog,
) -> Frozen | Ended:
    """One step of the freeze of an InProgress snapshot copy (`rules.owed`)."""
    consistency = _consistency(spec)
    deadline = float(consistency.freeze_deadline_seconds)
    generation = body["metadata"].get("generation")
    freeze = rules.recorded(status.freeze)
    seen, cut = await _look(ctx, target, freeze)
    for _ in range(4):  # at most: pre hooks → cut requested; or → post hooks
        decision = rules.step(freeze, seen, deadline, HookOnError.FAIL)
        now = now_rfc3339()
        update = rules.record(status, decision.freeze, now, generation)
        if cut is not None:
            update = (
                volume_rules.cut_progress(update, cut.volumes, cut.point_in_time, now, generation)
                or update
            )
        if update != status:
            written = await loop.written_status(ctx, body, update.wire())
            if written is None:
                return Frozen(AGAIN)  # decided on a stale read: decide again
            body, status = written, update
        freeze, cut = decision.freeze, None
        if decision.action is Action.RUN_PRE_HOOKS:
            seen = await _pre(ctx, body, target, consistency, freeze, deadline, log)
            continue
        if decision.action is Action.TAKE_SNAPSHOTS:
            ctx.metrics.stage_done("quiesced", target.method.value, target.started_at)
            looked = await clusters.cut_of(ctx, target)  # requests every snapshot
            if isinstance(looked, snapshots.Refused):
                seen = Seen(now=time.time(), clone_ended=_storage_refused(looked.message))
                continue
            return Frozen(AGAIN)
        if decision.action is Action.WAIT:
            left = rules.freeze_left(freeze, time.time(), deadline)
            timeout = cluster_rules.seconds_left(
                target.started_at, target.timeout_seconds, _utcnow()
            )
            return Frozen(max(min(POLL_SECONDS, left, timeout), 0.1))
        if decision.action is Action.RUN_POST_HOOKS:
            ended = await _thaw(ctx, body, status, freeze, target.source_name, consistency, log)
            if ended is None:
                return Frozen(AGAIN)
            ctx.metrics.stage_done("thawed", target.method.value, target.started_at)
            return ended
        return Ended(body)  # Done
    return Frozen(AGAIN)


async def thaw_ended(
    ctx: Context,
    body: JSON,
    spec: CloningOperationSpec,
    status: CloningOperationStatus,
    log: ObjectLog,
) -> bool:
    """A terminal operation whose freeze began and was not thawed: run the post hooks now.
    False when the status write was refused (the next step tries again)."""
    freeze = rules.recorded(status.freeze)
    if freeze.stage is not Stage.THAWING:
        why = f"the operation ended {status.phase}: {status.reason or ''}".rstrip(": ")
        thawing = Freeze(Stage.THAWING, freeze.started_at, freeze.failure or why, 1)
    else:
        thawing = Freeze(Stage.THAWING, freeze.started_at, freeze.failure, freeze.post_attempts + 1)
    update = rules.record(status, thawing, now_rfc3339(), body["metadata"].get("generation"))
    written = await loop.written_status(ctx, body, update.wire())
    if written is None:
        return False
    ended = await _thaw(ctx, written, update, thawing, spec.source_cluster, _consistency(spec), log)
    return ended is not None


async def _look(
    ctx: Context, target: clusters.Target, freeze: Freeze
) -> tuple[Seen, snapshots.Cut | snapshots.Cutting | None]:
    """What this step sees: the cut (while Cutting), and whether the clone ended meanwhile
    (the storage refused a snapshot, the operation's timeout)."""
    now = time.time()
    left = cluster_rules.seconds_left(target.started_at, target.timeout_seconds, _utcnow())
    if left <= 0:  # (before any freeze: none begins; after it: the post hooks run)
        ended = f"timeout: the target was not ready within {target.timeout_seconds:g} s"
        return Seen(now=now, clone_ended=ended), None
    if freeze.stage is not Stage.CUTTING:
        return Seen(now=now), None
    looked = await clusters.cut_of(ctx, target)
    if isinstance(looked, snapshots.Refused):
        return Seen(now=now, clone_ended=_storage_refused(looked.message)), None
    taken = bool(looked.volumes) and all(v.cut_at for v in looked.volumes)
    return Seen(now=now, cut_taken=taken), looked


async def _pre(
    ctx: Context,
    body: JSON,
    target: clusters.Target,
    consistency: Consistency,
    freeze: Freeze,
    deadline: float,
    log: ObjectLog,
) -> Seen:
    """Run the pre hooks in every pod; what a Fail hook said, if one failed."""
    left = rules.freeze_left(freeze, time.time(), deadline)
    try:
        ran = await run(ctx, target.namespace, target.source_name, consistency.pre, "pre", left)
    except _NoSource as e:
        return Seen(now=time.time(), pre_hooks_done=True, pre_hook_error=str(e))
    failed = [r for r in ran if not r.result.ok]
    fatal = [r for r in failed if _on_error(consistency.pre[r.index]) is HookOnError.FAIL]
    _report(ctx, body, "pre", failed, log)
    if not fatal:
        pods = len({r.pod for r in ran})
        ctx.emit(
            body, Reason.QUIESCED, f"pre hooks ran in {pods} pods of {target.source_name}", False
        )
    error = f"{fatal[0].pod}: {_describe(fatal[0], consistency.pre)}" if fatal else None
    return Seen(now=time.time(), pre_hooks_done=True, pre_hook_error=error)


async def _thaw(
    ctx: Context,
    body: JSON,
    status: CloningOperationStatus,
    freeze: Freeze,
    source: str,
    consistency: Consistency,
    log: ObjectLog,
) -> Ended | None:
    """Run the post hooks (Thawing is recorded), then record Thawed; None when that write
    was refused (the next step runs them again)."""
    namespace = body["metadata"]["namespace"]
    try:
        ran = await run(ctx, namespace, source, consistency.post, "post", None)
        failed = [r for r in ran if not r.result.ok]
        post_failure = (
            f"{failed[0].pod}: {_describe(failed[0], consistency.post)}" if failed else None
        )
    except _NoSource as e:
        ran, failed, post_failure = [], [], str(e)
    _report(ctx, body, "post", failed, log)
    update = rules.record(
        status,
        rules.thawed(freeze),
        now_rfc3339(),
        body["metadata"].get("generation"),
        post_failure,
    )
    written = await loop.written_status(ctx, body, update.wire())
    if written is None:
        return None
    released = f"post hooks ran in {len({r.pod for r in ran})} pods of {source}"
    ctx.emit(written, Reason.THAWED, f"{released}; {freeze.failure or 'the cut is taken'}", False)
    if freeze.failure is None:
        return Ended(written)
    return Ended(written, rules.failed_reason(freeze.failure), freeze.failure)


class _NoSource(Exception):
    """The source StatefulSet is gone: no pod to run a hook in."""


async def run(
    ctx: Context,
    namespace: str,
    source: str,
    hooks: Sequence[PostHook],
    when: str,
    within: float | None,
) -> list[Ran]:
    """Run `hooks` in every pod of the source, pods at once, each pod's hooks in order;
    a pre hook that fails with `onError: Fail` ends its pod's run. Each wait is bounded by
    the hook's timeout (and `within`: the freeze's time left)."""
    statefulset = await ctx.kube.get("apps/v1", "StatefulSet", namespace, source)
    if statefulset is None:
        raise _NoSource(f"the source StatefulSet {namespace}/{source} is gone: no hook ran")
    funnel = Writes(ctx.kube, writes.hooks(namespace, source))
    started = time.monotonic()

    async def in_pod(pod: str) -> list[Ran]:
        done: list[Ran] = []
        for index, hook in enumerate(hooks):
            wait = float(hook.timeout_seconds)
            if within is not None:
                wait = max(min(wait, within - (time.monotonic() - started)), 1.0)
            began = time.monotonic()
            try:
                result = await funnel.exec(
                    namespace, pod, rules.container_of(hook, statefulset), list(hook.command), wait
                )
            except NotLeading:
                raise
            except ApiError as e:
                result = Result(None, "", "", f"exec refused: {e.message}"[:1024])
            seconds = time.monotonic() - began
            ctx.metrics.hook_ran(when, result.ok, seconds)
            done.append(Ran(pod, index, result, seconds))
            if not result.ok and _on_error(hook) is HookOnError.FAIL and when == "pre":
                break
        return done

    per_pod = await asyncio.gather(*(in_pod(p) for p in rules.hook_pods(statefulset)))
    return [r for ran in per_pod for r in ran]


def _report(ctx: Context, body: JSON, when: str, failed: list[Ran], log: ObjectLog) -> None:
    for r in failed[:MAX_FAILURE_EVENTS]:
        log.warning("%s hook #%d failed in %s: %s", when, r.index + 1, r.pod, r.result.describe())
        ctx.emit(
            body,
            Reason.HOOK_FAILED,
            f"{when} hook #{r.index + 1} failed in pod {r.pod} after {r.seconds:.1f} s: "
            f"{r.result.describe()}",
            True,
        )
    if len(failed) > MAX_FAILURE_EVENTS:
        more = len(failed) - MAX_FAILURE_EVENTS
        ctx.emit(body, Reason.HOOK_FAILED, f"{more} more {when} hooks failed", True)


def _describe(ran: Ran, hooks: Sequence[PostHook]) -> str:
    command = " ".join(hooks[ran.index].command)[:120]
    return f"{ran.result.describe(256)} (hook #{ran.index + 1}: {command})"


def _on_error(hook: PostHook) -> HookOnError:
    return hook.on_error if isinstance(hook, PreHook) else HookOnError.CONTINUE


def _storage_refused(message: str) -> str:
    return f"the storage refused a snapshot: {message}"


def _consistency(spec: CloningOperationSpec) -> Consistency:
    assert spec.consistency is not None  # rules.owed checked it
    return spec.consistency


def _utcnow() -> datetime:
    return datetime.now(UTC)
