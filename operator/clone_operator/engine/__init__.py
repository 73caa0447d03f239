"""The engine: runs each resource's lifecycle as a sequence of idempotent steps.

It glues the pure layers (reconcile decides, builders build) to the API
(k8s). Every step starts from the newest body known (a watch event, our own
write's response, a GET only at a deadline) and can be repeated after the
operator is killed at any line: creations adopt only objects labelled as ours,
status moves are guarded by resourceVersion preconditions.

It owns the lifecycles: the two front doors (`operations`, `objects`, which never
import each other), the one cluster path (`clusters`), the write funnel (`writes`),
the loop (`loop`, `failures`), one instance's state (`context`) and its start and
stop (`lifecycle`); the webhook's reads (`admission`). Run-time services (election,
Events, metrics, mail, certificates, tasks and slots) are `clone_operator.services`'s;
it talks to the API server only through `clone_operator.k8s`, and writes a clone's
objects only through `writes`.
"""
