"""The engine: runs each resource's lifecycle as a sequence of idempotent steps.

It glues the pure layers (reconcile decides, builders build) to the API
(k8s). Every step starts from the newest body known (a watch event, our own
write's response, a GET only at a deadline) and can be repeated after the
operator is killed at any line: creations adopt only objects labelled as ours,
status moves are guarded by resourceVersion preconditions.
"""
