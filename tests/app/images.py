"""peerapp's images, built with Docker on the operator image's base and put on the real node.

One image per version (`clone-operator.local/peerapp:<version>`), so that a
CloningOperation's `serverVersion` moves the clone to a really different
image, whose version the app reports. Pods use `imagePullPolicy: Never`:
there is no registry, the node has what was imported.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.cluster import realnode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REPOSITORY = "clone-operator.local/peerapp"


def reference(version: str) -> str:
    return f"{REPOSITORY}:{version}"


def build_and_import(
    cluster_cache: Path,
    cluster_dir: Path,
    versions: list[str],
    node: realnode.NodeSpec = realnode.EAST,
) -> list[str]:
    """Build peerapp at these versions and import them into a real node; their references.

    Always imported again: a tag on the node may name an older build of the
    same version, and the import of unchanged layers costs little.
    """
    started = time.monotonic()
    docker = realnode.docker_client()
    if docker is None:
        raise AssertionError("no docker client to build peerapp (apt-get install docker.io)")
    base = subprocess.run(
        [str(ROOT / "hack" / "base-image.sh")], capture_output=True, text=True, check=False
    )
    if base.returncode != 0:
        raise AssertionError(f"making the base image failed:\n{base.stderr[-3000:]}")
    refs = [reference(v) for v in versions]
    for version, ref in zip(versions, refs, strict=True):
        built = subprocess.run(
            [docker, "build", "--quiet", "--build-arg", f"BASE={base.stdout.strip()}",
             "--build-arg", f"VERSION={version}", "--tag", ref, str(HERE)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if built.returncode != 0:
            raise AssertionError(f"building {ref} failed:\n{built.stderr[-3000:]}")
    saved = subprocess.run([docker, "save", *refs], capture_output=True, check=False)
    if saved.returncode != 0:
        raise AssertionError(f"docker save {refs}: {saved.stderr.decode(errors='replace')}")
    realnode.ctr(realnode.node_paths(cluster_cache, cluster_dir, node), "images", "import", "-",
                 stdin=saved.stdout)  # fmt: skip
    print(f"peerapp {versions} built and on {node.name} in {time.monotonic() - started:.1f} s")
    return refs
