"""clone-operator: clones stateful clusters and the objects they are made of."""

__version__ = "0.1.0"
