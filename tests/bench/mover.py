"""Benchmark and resume check: the data mover's image against a plain copy.

    make bench-mover

Docker, no cluster: the two ends of a transfer (`mover/mover.sh target` and
`source`) run as containers the way pods run them (uid 65532, read-only root,
no capabilities, no new privileges, the key file mounted read-only) on a
network of their own. On the same data (one large file and many small ones,
random bytes, `MOVER_BENCH_MB`, default 200 MB) it prints the median of 3 runs
of `cp -a` between two directories and of a full transfer, and their ratio.
Then the resume check: a transfer slowed to 20 MB/s is killed a third of the way,
started again at full speed, and the second attempt's statistics must show that
the bytes already on the target were not sent again (rsync's matched data > 0,
literal data < total); the target's tree must equal the source's. Exit 1 otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clone_operator.reconcile.transfer import Progress, progress

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("MOVER_IMAGE_REF", "clone-operator.local/mover:bench")
NETWORK = "clone-operator-mover-bench"
UID = 65532
MB = 1_000_000
DOCKER = shutil.which("docker") or "/usr/bin/docker"
RESTRICTED = [
    "--user", f"{UID}:{UID}", "--read-only", "--tmpfs", f"/tmp:uid={UID},gid={UID}",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", NETWORK,
]  # fmt: skip


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def make_data(root: Path, megabytes: int) -> None:
    (root / "many").mkdir(parents=True)
    with (root / "large").open("wb") as f:
        for _ in range(megabytes * 3 // 4):
            f.write(os.urandom(MB))
    for i in range(megabytes // 4 * 10):  # 100 kB files: a quarter of the bytes
        (root / "many" / f"f{i:05}").write_bytes(os.urandom(MB // 10))
    os.link(root / "many" / "f00000", root / "hard-link")


def fresh_target(work: Path, name: str) -> Path:
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    os.chown(path, UID, UID)
    return path


def start_target(data: Path, keys: Path) -> None:
    docker("rm", "-f", "mover-bench-target", check=False)
    docker("run", "-d", "--name", "mover-bench-target", *RESTRICTED,
           "-v", f"{data}:/data", "-v", f"{keys}:/keys:ro", IMAGE, "target")  # fmt: skip


def run_source(source: Path, keys: Path, bwlimit_kib: int | None = None,
               kill_after: float | None = None) -> str:  # fmt: skip
    """The source's log; killed (SIGKILL) after `kill_after` seconds when given."""
    docker("rm", "-f", "mover-bench-source", check=False)
    env = ["-e", "MOVER_TARGET=mover-bench-target:8000"]
    if bwlimit_kib:
        env += ["-e", f"MOVER_BWLIMIT={bwlimit_kib}"]
    docker("run", "-d", "--name", "mover-bench-source", *RESTRICTED, *env,
           "-v", f"{source}:/data:ro", "-v", f"{keys}:/keys:ro", IMAGE, "source")  # fmt: skip
    if kill_after is not None:
        time.sleep(kill_after)
        docker("kill", "mover-bench-source")
    else:
        docker("wait", "mover-bench-source")
    logs = docker("logs", "mover-bench-source")
    return logs.stdout + logs.stderr


def same_tree(a: Path, b: Path) -> bool:
    return subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)],
                          capture_output=True, check=False).returncode == 0  # fmt: skip


def transfer(source: Path, target: Path, keys: Path) -> tuple[float, Progress]:
    start_target(target, keys)
    started = time.perf_counter()
    log = run_source(source, keys)
    elapsed = time.perf_counter() - started
    state = progress(log)
    if state is None or not state.finished:
        raise SystemExit(f"the transfer did not finish:\n{log[-2000:]}")
    docker("wait", "mover-bench-target")  # it exits once the source marked the copy done
    return elapsed, state


def main() -> int:
    megabytes = int(os.environ.get("MOVER_BENCH_MB", "200"))
    built = subprocess.run(["hack/image.sh", IMAGE], cwd=ROOT, env={**os.environ,
                           "IMAGE_KIND": "mover"}, check=False)  # fmt: skip
    if built.returncode != 0:
        return 1
    made = docker("network", "create", NETWORK, check=False)
    if made.returncode != 0 and "already exists" not in made.stderr:
        raise SystemExit(f"docker network create {NETWORK}: {made.stderr.strip()}")
    with tempfile.TemporaryDirectory(prefix="mover-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        source, keys = work / "source", work / "keys"
        make_data(source, megabytes)
        keys.mkdir()
        (keys / "psk.txt").write_text(f"bench:{secrets.token_hex(32)}\n")
        (keys / "psk.txt").chmod(0o444)
        total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file()) - MB // 10

        cp_times = []
        for _ in range(3):
            target = fresh_target(work, "cp")
            started = time.perf_counter()
            subprocess.run(["cp", "-a", f"{source}/.", str(target)], check=True)
            cp_times.append(time.perf_counter() - started)
        mover_times = []
        for _ in range(3):
            elapsed, _state = transfer(source, fresh_target(work, "mover"), keys)
            mover_times.append(elapsed)
        if not same_tree(source, work / "mover"):
            print("the transfer's tree differs from the source's")
            return 1
        cp, mover = statistics.median(cp_times), statistics.median(mover_times)
        print(f"data: {total / MB:.0f} MB ({megabytes * 10 // 4} files of 100 kB, one large)")
        print(f"{'cp -a':28} median {cp:6.2f} s  {total / MB / cp:7.1f} MB/s")
        print(f"{'mover (rsync over TLS)':28} median {mover:6.2f} s  {total / MB / mover:7.1f} MB/s"
              f"  ratio to cp {mover / cp:.1f}x the time")  # fmt: skip

        # Resume: killed a third of the way through, then started again.
        target = fresh_target(work, "resumed")
        start_target(target, keys)
        seconds = total / (20 * 1024 * 1024) / 3
        first = progress(run_source(source, keys, bwlimit_kib=20 * 1024, kill_after=seconds))
        log = run_source(source, keys)
        second = progress(log)
        docker("wait", "mover-bench-target")
        done_before = first.bytes_done if first else 0
        print(
            f"resume: killed at {done_before / MB:.0f} MB of {total / MB:.0f} MB; "
            f"the next attempt sent {(second.literal_bytes or 0) / MB:.0f} MB and found "
            f"{(second.matched_bytes or 0) / MB:.0f} MB already there"
            if second
            else ""
        )
        ok = (
            second is not None
            and second.finished
            and (second.matched_bytes or 0) > 0
            and (second.literal_bytes or total) < total
            and same_tree(source, target)
        )
        print("resume check:", "ok" if ok else f"FAILED\n{log[-3000:]}")
        docker("rm", "-f", "mover-bench-source", "mover-bench-target", check=False)
        docker("network", "rm", NETWORK, check=False)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
