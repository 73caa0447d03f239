"""The operator's run-time services: what one operator instance runs beside the
resources' lifecycles, not a step of any of them.

Owns leader election (`election`), Kubernetes Events (`events`), the `/metrics` and
`/readyz` endpoint (`metrics`), heap trimming (`memory`), the webhook's certificate
Secret (`certificates`), outcome emails (`delivery`), and the engine's run-time
machinery: tasks, wake-ups, slots and the body cache (`runtime`), retry pacing
(`retries`).

It must not import the lifecycles (`clone_operator.engine`): the engine uses these
services, never the other way round (pyproject's layers contract). Like the engine
it talks to the API server only through `clone_operator.k8s`.
"""
