"""Image references: reading and replacing the tag without breaking the repository."""

from __future__ import annotations

import pytest

from clone_operator.builders import images

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "repo", "tag"),
    [
        ("typesense", "typesense", None),
        ("typesense/typesense", "typesense/typesense", None),
        ("typesense/typesense:27.1", "typesense/typesense", "27.1"),
        ("registry.local:5000/typesense", "registry.local:5000/typesense", None),
        ("registry.local:5000/team/typesense:27.1", "registry.local:5000/team/typesense", "27.1"),
        (f"typesense@{DIGEST}", "typesense", None),
        (f"typesense:27.1@{DIGEST}", "typesense", "27.1"),
        (f"localhost:5000/ts:27.1@{DIGEST}", "localhost:5000/ts", "27.1"),
    ],
)
def test_split_image_separates_repository_and_tag(image: str, repo: str, tag: str | None) -> None:
    assert images.split_image(image) == (repo, tag)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("typesense", "latest"),
        ("host:5000/typesense", "latest"),
        (f"typesense@{DIGEST}", "latest"),
        ("typesense:0.25.2", "0.25.2"),
        (f"typesense:27.1@{DIGEST}", "27.1"),
    ],
)
def test_image_tag_defaults_to_latest_like_the_runtime(image: str, tag: str) -> None:
    assert images.image_tag(image) == tag


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("typesense", "typesense:28.0"),
        ("typesense:27.1", "typesense:28.0"),
        ("typesense/typesense:27.1", "typesense/typesense:28.0"),
        ("host:5000/typesense", "host:5000/typesense:28.0"),
        ("host:5000/typesense:27.1", "host:5000/typesense:28.0"),
        (f"typesense@{DIGEST}", "typesense:28.0"),
        (f"typesense:27.1@{DIGEST}", "typesense:28.0"),
        (f"host:5000/a/b:27.1@{DIGEST}", "host:5000/a/b:28.0"),
    ],
)
def test_with_tag_replaces_the_tag_and_drops_the_pinning_digest(image: str, expected: str) -> None:
    out = images.with_tag(image, "28.0")
    assert out == expected
    assert "@" not in out
    assert images.image_tag(out) == "28.0"


def test_with_tag_keeps_the_registry_port() -> None:
    out = images.with_tag("host:5000/typesense:27.1", "28.0")
    assert out.startswith("host:5000/")
    assert images.split_image(out)[0] == "host:5000/typesense"


def test_with_tag_is_idempotent() -> None:
    once = images.with_tag("host:5000/typesense:27.1", "28.0")
    assert images.with_tag(once, "28.0") == once
