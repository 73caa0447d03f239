"""Container image references: read and replace the tag."""

from __future__ import annotations


def split_image(image: str) -> tuple[str, str | None]:
    """`repo[:tag][@digest]` → (repo, tag). A registry port is not a tag."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, None


def image_tag(image: str) -> str:
    """The image's tag; `latest` when none is given, as the container runtime assumes."""
    return split_image(image)[1] or "latest"


def with_tag(image: str, tag: str) -> str:
    """The image with its tag replaced (a digest is dropped: it pins the old tag)."""
    repo, _ = split_image(image)
    return f"{repo}:{tag}"
