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

    def _known(self, name: str) -> bool:
        """A node label value, or an alias of one."""
        return self.aliases.get(name, name) in self.node_regions

    def _allowed(self, name: str) -> bool:
        """Allowed when the setting is empty, or it names this name or what it stands for."""
        return (
            not self.allowed or name in self.allowed or self.aliases.get(name, name) in self.allowed
        )

    def valid_names(self) -> list[str]:
        """Exactly the names `resolve` accepts."""
        names = set(self.node_regions) | set(self.aliases)
        return sorted(n for n in names if self._known(n) and self._allowed(n))

    def resolve(self, name: str) -> str:
        """The `topology.kubernetes.io/region` value a user-facing name stands for."""
        if not (self._known(name) and self._allowed(name)):
            valid = ", ".join(self.valid_names()) or "none: no node has a region label"
            raise UnknownRegion(f"unknown target region {name!r}; valid regions: {valid}")
        return self.aliases.get(name, name)

    def display(self, value: str) -> str:
        """The label value itself; aliases are inputs only."""
        return value


def majority_region(regions: Iterable[str | None]) -> str | None:
    """The region most of the source's pods run in (None when none is known)."""
    counts = Counter(r for r in regions if r)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
