"""The engine: runs each resource's lifecycle as a sequence of idempotent steps.

It glues the pure layers (reconcile decides, builders build) to the API
(k8s). Every step re-reads what it needs and can be repeated after the
operator is killed at any line: creations adopt only objects labelled as ours,
status moves are guarded by resourceVersion preconditions.
"""
