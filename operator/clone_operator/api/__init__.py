"""Pydantic models of the custom resources: the one source of truth.

The CRD YAML in `crds/` is generated from these models (`make crds`); handlers
parse bodies into them. Purely declarative; no I/O here, and it imports nothing
else of the operator.
"""
