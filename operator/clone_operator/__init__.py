"""clone-operator: clones stateful clusters and the objects they are made of."""

from clone_operator.lean_imports import defer_generated_code

__version__ = "0.1.0"

# Before kopf is imported: it would load every generated Kubernetes model (lean_imports.py).
defer_generated_code()
