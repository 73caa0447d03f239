"""The operator as its image runs it, under tracemalloc: where its memory goes.

    python -m tests.bench.traced_operator OUT     # (the scale benchmark's --trace-memory)

Every 10 s it takes a snapshot; whenever the traced total is the largest so far, it
writes to OUT the biggest allocation sites by file and by line, and the number of
live asyncio tasks. tracemalloc slows the process and adds its own memory: a run with
it tells where memory goes, not the RSS figures (those come from a run without it).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def watch(out: Path) -> None:
    best = 0
    while True:
        time.sleep(10)
        current, _peak = tracemalloc.get_traced_memory()
        if current <= best:
            continue
        best = current
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        tasks = sum(isinstance(o, asyncio.Task) for o in gc.get_objects())
        lines = [f"traced {current / 2**20:.1f} MiB; {tasks} asyncio tasks", "", "by file:"]
        for stat in snapshot.statistics("filename")[:25]:
            lines.append(f"  {stat.size / 2**20:7.2f} MiB {stat.count:8d}  {stat.traceback}")
        lines += ["", "by line:"]
        for stat in snapshot.statistics("lineno")[:40]:
            lines.append(f"  {stat.size / 2**20:7.2f} MiB {stat.count:8d}  {stat.traceback}")
        out.write_text("\n".join(lines) + "\n")


def main() -> int:
    tracemalloc.start()
    threading.Thread(target=watch, args=(Path(sys.argv[1]),), daemon=True).start()
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # as deployed: not installed
    from clone_operator.cli import main as operator_main

    return int(operator_main(["run", "--dev"]) or 0)


if __name__ == "__main__":
    sys.exit(main())
