"""The docs that must follow the code: every status reason has its troubleshooting entry."""

from __future__ import annotations

from pathlib import Path

from clone_operator.reconcile.conditions import Reason

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_reason_is_explained_on_the_troubleshooting_page() -> None:
    page = (DOCS / "troubleshooting.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in page.splitlines()
        if line.startswith("| `")
    }
    assert {r.value for r in Reason} <= rows, sorted({r.value for r in Reason} - rows)
