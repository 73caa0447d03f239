"""Label selectors, evaluated in memory."""

from __future__ import annotations

from typing import Any


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels + matchExpressions) selects these labels.

    An empty or missing selector selects nothing here: for the question we ask
    (could the source route to the clone?) that is the safe reading for Services.
    """
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def service_selector(selector: dict[str, str] | None) -> dict[str, Any]:
    """A Service's plain map selector as a LabelSelector."""
    return {"matchLabels": dict(selector or {})}


def keys_of(selector: dict[str, Any] | None) -> set[str]:
    """Every label key a LabelSelector mentions."""
    if not selector:
        return set()
    keys = set((selector.get("matchLabels") or {}).keys())
    keys |= {e["key"] for e in selector.get("matchExpressions") or []}
    return keys
