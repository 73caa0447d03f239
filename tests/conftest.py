"""Shared pytest wiring for every suite. The e2e fixtures are in tests/e2e/conftest.py."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the control plane run last: the rest need a steady one."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
