"""Prometheus metrics and the monitoring endpoint (`/metrics`, `/readyz`).

The engine and the handlers call the small functions here; builders and
reconcile stay pure. Every metric is named `clone_operator_*`; the list, with
what each label means, is in docs/observability.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    REGISTRY,
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

log = logging.getLogger(__name__)
# No `*_created` series: dashboards use the counters themselves.
disable_created_metrics()  # type: ignore[no-untyped-call]

KINDS = (OPERATION_KIND, OBJECT_KIND)
OUTCOMES: dict[str, tuple[str, ...]] = {
    OPERATION_KIND: tuple(p.value for p in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)),
    OBJECT_KIND: (State.CREATED.value, State.FAILED.value),
}
OBJECT_TERMINAL = frozenset({State.CREATED.value, State.FAILED.value})
NOTIFICATION_RESULTS = ("sent", "failed", "unconfirmed", "disabled")

OPERATIONS = Counter(
    "clone_operator_operations",
    "Resources that reached a terminal phase/state, by kind and outcome.",
    ["kind", "outcome"],
)
IN_FLIGHT = Gauge(
    "clone_operator_operations_in_flight",
    "Resources this operator is driving that are not terminal yet (Pending/InProgress).",
    ["kind"],
)
DURATION = Histogram(
    "clone_operator_operation_duration_seconds",
    "Time from a resource's creation to its terminal phase/state.",
    ["kind", "outcome"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
RECONCILE_ERRORS = Counter(
    "clone_operator_reconcile_errors",
    "Unexpected errors of a resource's engine loop (kopf retries it), by kind.",
    ["kind"],
)
NOTIFICATIONS = Counter(
    "clone_operator_notifications",
    "Outcome emails settled per recipient: sent, failed (rejected or retries exhausted), "
    "unconfirmed (operator stopped mid-transfer), disabled (no SMTP server configured).",
    ["result"],
)
NOTIFICATION_ERRORS = Counter(
    "clone_operator_notification_errors",
    "Failed SMTP delivery attempts per recipient: transient (retried) or permanent (5xx).",
    ["error"],
)
BUILD_INFO = Gauge("clone_operator_build_info", "The running version (always 1).", ["version"])

_in_flight: dict[str, set[str]] = {kind: set() for kind in KINDS}
for _kind in KINDS:
    IN_FLIGHT.labels(_kind).set_function(lambda k=_kind: float(len(_in_flight[k])))  # type: ignore[misc]
    RECONCILE_ERRORS.labels(_kind)
    for _outcome in OUTCOMES[_kind]:
        OPERATIONS.labels(_kind, _outcome)
for _result in NOTIFICATION_RESULTS:
    NOTIFICATIONS.labels(_result)
for _error in ("transient", "permanent"):
    NOTIFICATION_ERRORS.labels(_error)
BUILD_INFO.labels(__version__).set(1)


def terminal(kind: str, status: Mapping[str, Any]) -> bool:
    if kind == OPERATION_KIND:
        return status.get("phase") in {p.value for p in TERMINAL_PHASES}
    return status.get("state") in OBJECT_TERMINAL


def track(kind: str, uid: str, status: Mapping[str, Any]) -> None:
    """Count `uid` as in flight while its status is not terminal."""
    if terminal(kind, status):
        _in_flight[kind].discard(uid)
    else:
        _in_flight[kind].add(uid)


def forget(kind: str, uid: str) -> None:
    _in_flight[kind].discard(uid)


def finished(kind: str, outcome: str, created: str | None) -> None:
    """A resource reached its terminal `outcome` just now."""
    OPERATIONS.labels(kind, outcome).inc()
    if created:
        start = datetime.fromisoformat(created.replace("Z", "+00:00"))
        DURATION.labels(kind, outcome).observe(
            max(0.0, (datetime.now(UTC) - start).total_seconds())
        )


def reconcile_error(kind: str) -> None:
    RECONCILE_ERRORS.labels(kind).inc()


def notification_settled(state: NotificationState) -> None:
    result = {
        NotificationState.SENT: "sent",
        NotificationState.FAILED: "failed",
        NotificationState.UNCONFIRMED: "unconfirmed",
        NotificationState.DISABLED: "disabled",
    }.get(state)
    if result:
        NOTIFICATIONS.labels(result).inc()


def notification_error(permanent: bool) -> None:
    NOTIFICATION_ERRORS.labels("permanent" if permanent else "transient").inc()


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


_api_collector: ApiRequests | None = None


def expose_api_requests(counts: Callable[[], Mapping[str, int]]) -> None:
    """(Re)point the API request metric at the current client's counts."""
    global _api_collector  # one per process, like the default registry itself
    if _api_collector is not None:
        REGISTRY.unregister(_api_collector)
    _api_collector = ApiRequests(counts)
    REGISTRY.register(_api_collector)


async def serve(host: str, port: int, ready: Callable[[], bool]) -> web.AppRunner | None:
    """Start `/metrics` and `/readyz` on host:port; None (and a warning) if the port is taken."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"ready": True})
        return web.json_response({"ready": False}, status=503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/readyz", readyz)])
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
