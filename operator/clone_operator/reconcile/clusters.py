"""Following a target cluster until it is ready: the rules both kinds share. Pure.

One timeout rule (from when the clone went InProgress), one readiness rule (every
desired replica ready, on the generation the StatefulSet controller observed) and
one rule for pods that cannot start. A pod waiting for its volumes to be
provisioned is progress, not a placement failure: a real CSI clone can take
minutes, and the timeout bounds that wait. What an error of building and creating
a target means to the user: `creation_failure` (`CREATION_ERRORS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clone_operator.api.common import parse_rfc3339
from clone_operator.builders.clusters import BuildError, SourceReferenced
from clone_operator.kube.errors import Invalid
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.writes import OutsideAdmitted


class SourceNotFound(Exception):
    """The source a clone is made from does not exist (any more)."""


class TargetExists(Exception):
    """An object with the target's name exists and is not ours: never overwritten."""


CREATION_ERRORS = (SourceNotFound, BuildError, TargetExists, OutsideAdmitted, Invalid)
"""What building and creating a target may raise that fails the clone (`creation_failure`)."""


def creation_failure(error: Exception) -> tuple[Reason, str]:
    """The reason and the message a user can act on, for an error of building and
    creating a target cluster (one of `CREATION_ERRORS`), in the cluster engine's words
    (a CloneObject's are `reconcile.objects.destination_reason`'s)."""
    if isinstance(error, SourceNotFound):
        return Reason.SOURCE_NOT_FOUND, str(error)
    if isinstance(error, SourceReferenced):
        return Reason.SOURCE_REFERENCED, str(error)
    if isinstance(error, BuildError):
        return Reason.INVALID_SOURCE, str(error)
    if isinstance(error, TargetExists):
        return Reason.TARGET_EXISTS, str(error)
    if isinstance(error, Invalid):
        return Reason.INVALID_TARGET, f"the API server refused the target: {error.message}"
    # A write outside what admission checked (OutsideAdmitted): nothing was sent.
    return Reason.OUTSIDE_ADMITTED, str(error)


@dataclass(frozen=True)
class Readiness:
    """How far a target StatefulSet is: `ready` of `desired` replicas."""

    ready: int
    desired: int
    done: bool
    """Every desired replica is ready and the controller observed the current generation."""

    def __str__(self) -> str:
        return f"{self.ready}/{self.desired}"


def readiness(statefulset: dict[str, Any]) -> Readiness:
    spec = statefulset.get("spec") or {}
    st = statefulset.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(st.get("readyReplicas") or 0)
    observed = st.get("observedGeneration") == statefulset["metadata"].get("generation")
    return Readiness(ready, desired, observed and ready >= desired)


def target_summary(statefulset: dict[str, Any]) -> dict[str, Any]:
    """What following a target reads of its StatefulSet (`readiness`, its provenance
    labels, its uid and version): kept per clone in flight instead of the whole object
    with its pod template (a few hundred bytes instead of about 15 KB)."""
    meta = statefulset.get("metadata") or {}
    keys = ("name", "namespace", "uid", "labels", "generation", "resourceVersion")
    return {
        "metadata": {k: meta[k] for k in keys if k in meta},
        "spec": {"replicas": (statefulset.get("spec") or {}).get("replicas", 1)},
        "status": statefulset.get("status") or {},
    }


def seconds_left(started_at: str | None, timeout_seconds: float, now: datetime) -> float:
    """The timeout rule of every clone: `timeout_seconds` from `started_at` (when it went
    InProgress); 0 means timed out. Not started yet: the whole timeout is left."""
    if started_at is None:
        return float(timeout_seconds)
    return max(0.0, timeout_seconds - (now - parse_rfc3339(started_at)).total_seconds())


def next_pod_check(waited: float, grace_seconds: int) -> float | None:
    """Seconds until pods are worth a look for being stuck; None: look now. Before the
    grace period no pod can have been stuck that long, so a clone that gets ready
    promptly costs no request."""
    if waited < grace_seconds:
        return grace_seconds - waited + 0.5
    return None


# What the scheduler (its VolumeBinding plugin) says of a pod whose immediate-binding
# PersistentVolumeClaims are not bound yet: it retries by itself once they are.
VOLUMES_NOT_BOUND = "unbound immediate PersistentVolumeClaims"


def _unschedulable(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The pod's PodScheduled=False/Unschedulable condition, when it has one."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if (c.get("type"), c.get("status"), c.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return dict(c)
    return None


def scheduling(pod: dict[str, Any]) -> dict[str, Any]:
    """What the rules below read of a pod: its name and, while the scheduler refuses it,
    that condition. The engine keeps this per pod of a target (from a pod watch), not
    the whole pod."""
    slim: dict[str, Any] = {"metadata": {"name": pod["metadata"]["name"]}}
    c = _unschedulable(pod)
    if c is not None:
        keys = ("type", "status", "reason", "message", "lastTransitionTime")
        slim["status"] = {"conditions": [{k: c[k] for k in keys if k in c}]}
    return slim


def waits_for_volumes(pod: dict[str, Any]) -> bool:
    """Whether the scheduler holds the pod only until its volumes are bound."""
    c = _unschedulable(pod)
    return c is not None and VOLUMES_NOT_BOUND in str(c.get("message") or "")


def volumes_message(pods: list[dict[str, Any]]) -> str | None:
    """What the target waits for while its volumes are being provisioned (None: nothing)."""
    waiting = sorted(p["metadata"]["name"] for p in pods if waits_for_volumes(p))
    if not waiting:
        return None
    pods_have = f"pods {', '.join(waiting)} have" if len(waiting) > 1 else f"pod {waiting[0]} has"
    return (
        f"waiting for volumes to be provisioned: {pods_have} PersistentVolumeClaims not bound yet"
    )


def progress_message(base: str, current: str | None, note: str | None) -> str:
    """A clone's progress message: `base` (its readiness) and what it waits for.

    `note` None: the pods were not looked at this time, so a note already in `current`
    for the same readiness stays (no write back and forth between pod checks); "":
    they were, and nothing holds them.
    """
    if note is None:
        return current if current and current.startswith(f"{base}; ") else base
    return f"{base}; {note}" if note else base


def stuck_check_in(pods: list[dict[str, Any]], now: datetime, grace_seconds: int) -> float | None:
    """Seconds until a pod the nodes refuse has been refused for the whole grace period
    (when `unschedulable_message` would name it); None: no pod is refused, so only a pod
    event can change that."""
    due = [
        grace_seconds - (now - parse_rfc3339(c["lastTransitionTime"])).total_seconds()
        for pod in pods
        if (c := _unschedulable(pod)) is not None
        and c.get("lastTransitionTime")
        and not waits_for_volumes(pod)
    ]
    return max(min(due), 0.0) + 0.5 if due else None


def unschedulable_message(
    pods: list[dict[str, Any]], now: datetime, grace_seconds: int
) -> str | None:
    """Why the target cannot start, once a pod stayed unschedulable past the grace period.

    A pod that waits only for its volumes is not stuck (`waits_for_volumes`). The grace
    counts from the condition's lastTransitionTime, which does not move while the pod
    stays unschedulable: a pod that waited for its volumes longer than the grace and is
    then refused by every node fails at once, as it should (no node will take it).
    """
    for pod in pods:
        c = _unschedulable(pod)
        if c is None or not c.get("lastTransitionTime") or waits_for_volumes(pod):
            continue
        since = parse_rfc3339(c["lastTransitionTime"])
        if (now - since).total_seconds() >= grace_seconds:
            name = pod["metadata"]["name"]
            return f"pod {name} cannot be scheduled: {c.get('message', 'no reason given')}"
    return None
