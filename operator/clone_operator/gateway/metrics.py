"""The gateway's Prometheus metrics, owned by an instance (its own registry), never globals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from clone_operator.gateway.limits import method_label

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """`clone_operator_api_requests_total{method,route,status}` and
    `clone_operator_api_request_duration_seconds{method,route}`; `route` is the path
    template (`/api/admin/clone_objects/{object_id}`), never the raw path; `method` one of
    `limits.METHODS` or `other`: no label takes a value a client can choose freely."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "clone_operator_api_requests",
            "HTTP requests the gateway answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clone_operator_api_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
