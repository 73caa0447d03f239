"""Prometheus metrics and the monitoring endpoint (`/metrics`, `/readyz`).

`Metrics` is one operator instance's set, in its own registry (two instances in
one process, as tests make them, never share a count). The engine calls its
methods; builders and reconcile stay pure. Every metric is named
`clone_operator_*`; the list, with what each label means, is in
docs/monitoring.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from clone_operator import __version__
from clone_operator.api.cloneobjects import KIND as OBJECT_KIND
from clone_operator.api.cloneobjects import State
from clone_operator.api.cloningoperations import KIND as OPERATION_KIND
from clone_operator.api.cloningoperations import TERMINAL_PHASES, NotificationState, Phase
from clone_operator.api.common import parse_rfc3339
from clone_operator.services.retries import RETRY_REASONS

log = logging.getLogger(__name__)

OUTCOMES: dict[str, tuple[str, ...]] = {
    OPERATION_KIND: tuple(p.value for p in Phase if p in TERMINAL_PHASES),
    OBJECT_KIND: tuple(s.value for s in State if s.terminal),
}
NOTIFICATION_RESULTS = {
    NotificationState.SENT: "sent",
    NotificationState.FAILED: "failed",
    NotificationState.UNCONFIRMED: "unconfirmed",
    NotificationState.DISABLED: "disabled",
}


def terminal(kind: str, status: Mapping[str, Any]) -> bool:
    """Whether a status (as read, camelCase) is terminal for its kind."""
    if kind == OPERATION_KIND:
        return status.get("phase") in OUTCOMES[kind]
    return status.get("state") in OUTCOMES[kind]


class ApiRequests(Collector):
    """`clone_operator_api_requests_total{method}`: read from the Kube client's own counts."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "clone_operator_api_requests",
            "Requests this operator's engine sent to the Kubernetes API, by HTTP method "
            "(kopf's own watches are not counted).",
            labels=["method"],
        )
        for method, n in sorted(self.counts().items()):
            family.add_metric([method], float(n))
        yield family


class Metrics:
    """The metrics of one operator instance, in a registry of its own."""

    def __init__(self, api_requests: Callable[[], Mapping[str, int]]) -> None:
        # No `*_created` series: dashboards use the counters themselves. (A switch of
        # the client library, for the whole process; setting it again changes nothing.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self.registry.register(ApiRequests(api_requests))
        self.in_flight: dict[str, set[str]] = {kind: set() for kind in OUTCOMES}
        self.operations = Counter(
            "clone_operator_operations",
            "Resources that reached a terminal phase/state, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        in_flight = Gauge(
            "clone_operator_operations_in_flight",
            "Resources this operator is driving that are not terminal yet (Pending/InProgress).",
            ["kind"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "clone_operator_operation_duration_seconds",
            "Time from a resource's creation to its terminal phase/state.",
            ["kind", "outcome"],
            buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
            registry=self.registry,
        )
        self.ready_to_done = Histogram(
            "clone_operator_ready_to_done_seconds",
            "Time from the watch event that showed a clone's target StatefulSet ready (every "
            "replica) to its terminal status write (Succeeded / Created): the engine's own "
            "reaction time, by kind.",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.stages = Histogram(
            "clone_operator_stage_duration_seconds",
            "Time from a clone's start (InProgress) to the end of a stage of its copy, by "
            "stage (`quiesced`: the pre hooks ran; `thawed`: the post hooks ran; `cut`: every "
            "snapshot cut and ready; `transferred`: every volume moved by a Transfer; "
            "`volumes`: every target volume Bound; `ready`: every "
            "replica ready) and copy method.",
            ["stage", "method"],
            buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
            registry=self.registry,
        )
        self.transferred_bytes = Counter(
            "clone_operator_transferred_bytes_total",
            "Bytes the Transfer copy method's movers put on target volumes (sent, or found "
            "there already after a resumed transfer).",
            registry=self.registry,
        )
        self.hooks = Histogram(
            "clone_operator_hook_duration_seconds",
            "Time one consistency hook took in one source pod, by when it runs (`pre`, "
            "`post`) and how it ended (`ok`, `failed`).",
            ["when", "result"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "clone_operator_reconcile_errors",
            "Errors of a resource's engine that a retry cannot fix (an API refusal, an internal "
            "error): the resource ends Failed. By kind.",
            ["kind"],
            registry=self.registry,
        )
        self.retries = Counter(
            "clone_operator_retries",
            "Steps of a resource's engine retried after a backoff, by kind and reason (the "
            "transient error: server_error, throttled, conflict, unauthorized, connection, "
            "timeout; or permanent, for a finished resource that cannot be failed).",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "clone_operator_notifications",
            "Outcome emails settled per recipient: sent, failed (rejected or retries exhausted), "
            "unconfirmed (operator stopped mid-transfer), disabled (no SMTP server configured).",
            ["result"],
            registry=self.registry,
        )
        self.notification_errors = Counter(
            "clone_operator_notification_errors",
            "Failed SMTP delivery attempts per recipient: transient (retried) or permanent (5xx).",
            ["error"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "clone_operator_leader",
            "1 while this replica holds the leader Lease (and acts), else 0.",
            registry=self.registry,
        )
        self.leadership_changes = Counter(
            "clone_operator_leadership_changes",
            "Times this replica started or stopped leading, by change (acquired, lost).",
            ["change"],
            registry=self.registry,
        )
        self.writes_refused = Counter(
            "clone_operator_writes_refused",
            "Writes the API client refused to send because this replica no longer leads.",
            registry=self.registry,
        )
        build_info = Gauge(
            "clone_operator_build_info",
            "The running version (always 1).",
            ["version"],
            registry=self.registry,
        )
        # Every series exists from the start, at 0: rates and alerts need no warm-up.
        for kind, outcomes in OUTCOMES.items():
            in_flight.labels(kind).set_function(lambda k=kind: float(len(self.in_flight[k])))  # type: ignore[misc]
            self.reconcile_errors.labels(kind)
            for reason in RETRY_REASONS:
                self.retries.labels(kind, reason)
            self.ready_to_done.labels(kind)
            for outcome in outcomes:
                self.operations.labels(kind, outcome)
        for result in NOTIFICATION_RESULTS.values():
            self.notifications.labels(result)
        for error in ("transient", "permanent"):
            self.notification_errors.labels(error)
        build_info.labels(__version__).set(1)
        for change in ("acquired", "lost"):
            self.leadership_changes.labels(change)

    def leading(self, now_leading: bool) -> None:
        self.leader.set(1 if now_leading else 0)
        self.leadership_changes.labels("acquired" if now_leading else "lost").inc()

    def track(self, kind: str, uid: str, status: Mapping[str, Any]) -> None:
        """Count `uid` as in flight while its status is not terminal."""
        if terminal(kind, status):
            self.in_flight[kind].discard(uid)
        else:
            self.in_flight[kind].add(uid)

    def forget(self, kind: str, uid: str) -> None:
        self.in_flight[kind].discard(uid)

    def finished(self, kind: str, outcome: str, created: str | None) -> None:
        """A resource reached its terminal `outcome` just now."""
        self.operations.labels(kind, outcome).inc()
        if created:
            waited = (datetime.now(UTC) - parse_rfc3339(created)).total_seconds()
            self.duration.labels(kind, outcome).observe(max(0.0, waited))

    def done_after_ready(self, kind: str, seen: float | None) -> None:
        """A clone's terminal write landed; its target was seen ready at `seen` (monotonic;
        None: read ready by the engine itself, no watch event to count from)."""
        if seen is not None:
            self.ready_to_done.labels(kind).observe(max(0.0, time.monotonic() - seen))

    def stage_done(self, stage: str, method: str, started_at: str | None) -> None:
        """A stage of a clone's copy ended just now (`started_at`: when it went InProgress)."""
        if started_at:
            waited = (datetime.now(UTC) - parse_rfc3339(started_at)).total_seconds()
            self.stages.labels(stage, method).observe(max(0.0, waited))

    def transferred(self, count: int) -> None:
        """Bytes newly on a Transfer's target volumes (as status reports them)."""
        self.transferred_bytes.inc(count)

    def hook_ran(self, when: str, ok: bool, seconds: float) -> None:
        """One consistency hook ended in one pod (`when`: pre or post)."""
        self.hooks.labels(when, "ok" if ok else "failed").observe(max(0.0, seconds))

    def reconcile_error(self, kind: str) -> None:
        self.reconcile_errors.labels(kind).inc()

    def retried(self, kind: str, reason: str) -> None:
        """A step of a `kind` resource is retried after a backoff (`reason`: RETRY_REASONS)."""
        self.retries.labels(kind, reason if reason in RETRY_REASONS else "permanent").inc()

    def notification_settled(self, state: NotificationState) -> None:
        result = NOTIFICATION_RESULTS.get(state)
        if result:
            self.notifications.labels(result).inc()

    def notification_error(self, permanent: bool) -> None:
        self.notification_errors.labels("permanent" if permanent else "transient").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve(
    metrics: Metrics, host: str, port: int, ready: Callable[[], bool]
) -> web.AppRunner | None:
    """Start `/metrics` and `/readyz` on host:port; None (and a warning) if the port is taken."""

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"ready": True})
        return web.json_response({"ready": False}, status=503)

    app = web.Application()
    app.add_routes([web.get("/metrics", scrape), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        log.warning("monitoring endpoint not started on %s:%d: %s", host, port, e)
        await runner.cleanup()
        return None
    log.info("monitoring endpoint: http://%s:%d/metrics and /readyz", host, port)
    return runner
