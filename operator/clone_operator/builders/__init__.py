"""Pure builders: resolved models in, desired Kubernetes objects (plain dicts) out.

No I/O here: every function is deterministic in its arguments, so a builder
can run again after a restart and produce the very same object. Must not decide
a resource's state (reconcile/) nor import anything above it.
"""
