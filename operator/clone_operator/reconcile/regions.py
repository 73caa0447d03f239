"""Region names: user-facing names (aliases or node label values) → node label values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class UnknownRegion(ValueError):
    """A region no node carries and no alias names; the message lists the valid ones."""


@dataclass(frozen=True)
class RegionTable:
    """The regions this cluster offers, from node labels and the operator's settings."""

    node_regions: frozenset[str]
    aliases: Mapping[str, str]
    allowed: frozenset[str] = frozenset()

    def valid_names(self) -> list[str]:
        names = set(self.node_regions) | set(self.aliases)
        if self.allowed:
            names &= self.allowed | {self.aliases.get(a, a) for a in self.allowed}
        return sorted(names)

    def resolve(self, name: str) -> str:
        """The `topology.kubernetes.io/region` value a user-facing name stands for."""
        value = self.aliases.get(name, name)
        allowed = not self.allowed or name in self.allowed or value in self.allowed
        if value not in self.node_regions or not allowed:
            valid = ", ".join(self.valid_names()) or "none: no node has a region label"
            raise UnknownRegion(f"unknown target region {name!r}; valid regions: {valid}")
        return value

    def display(self, value: str) -> str:
        """The label value itself; aliases are inputs only."""
        return value


def majority_region(regions: Iterable[str | None]) -> str | None:
    """The region most of the source's pods run in (None when none is known)."""
    counts = Counter(r for r in regions if r)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
