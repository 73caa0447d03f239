"""Following a target cluster until it is ready: the rules both kinds share. Pure.

One timeout rule (from when the clone went InProgress), one readiness rule (every
desired replica ready, on the generation the StatefulSet controller observed) and
one rule for pods that cannot start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clone_operator.api.common import parse_rfc3339


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


def unschedulable_message(
    pods: list[dict[str, Any]], now: datetime, grace_seconds: int
) -> str | None:
    """Why the target cannot start, once a pod stayed unschedulable past the grace period."""
    for pod in pods:
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") != "PodScheduled" or c.get("status") != "False":
                continue
            if c.get("reason") != "Unschedulable" or not c.get("lastTransitionTime"):
                continue
            since = parse_rfc3339(c["lastTransitionTime"])
            if (now - since).total_seconds() >= grace_seconds:
                name = pod["metadata"]["name"]
                return f"pod {name} cannot be scheduled: {c.get('message', 'no reason given')}"
    return None
