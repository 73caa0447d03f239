"""clone-operator: clones stateful clusters and the objects they are made of."""

from clone_operator.k8s.lean import defer_generated_code

__version__ = "0.1.0"

# Before kopf is imported: it would load every generated Kubernetes model (k8s/lean.py).
defer_generated_code()
