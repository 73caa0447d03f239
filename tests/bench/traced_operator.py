"""The operator as its image runs it, under tracemalloc: where its memory goes.

    python -m tests.bench.traced_operator OUT     # (the scale benchmark's --trace-memory)

Every 10 s it takes a snapshot; whenever the traced total is the largest so far, it
writes to OUT the biggest allocation sites by file, by line and by the operator's or
kopf's code that caused them, and the number of live asyncio tasks. tracemalloc slows
the process and adds its own memory: a run with it tells where memory goes, not the
RSS figures (those come from a run without it).
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
        lines += ["", "by caller (the innermost frames of the operator's and kopf's code):"]
        for size, count, where in by_caller(snapshot)[:30]:
            lines.append(f"  {size / 2**20:7.2f} MiB {count:8d}  {where}")
        out.write_text("\n".join(lines) + "\n")


OWN_CODE = ("clone_operator", "/kopf/")


def by_caller(snapshot: tracemalloc.Snapshot) -> list[tuple[int, int, str]]:
    """Allocations grouped by the code that asked for them: the two innermost frames
    of the operator's or kopf's own code (a JSON body is charged to whoever parsed it,
    not to json/decoder.py)."""
    sizes: dict[str, list[int]] = {}
    for trace in snapshot.traces:
        innermost_first = list(trace.traceback)[::-1]
        own = [f for f in innermost_first if any(o in f.filename for o in OWN_CODE)][:2]
        frames = own or innermost_first[:1]
        where = " < ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames)
        entry = sizes.setdefault(where, [0, 0])
        entry[0] += trace.size
        entry[1] += 1
    return sorted(((s, c, w) for w, (s, c) in sizes.items()), reverse=True)


def main() -> int:
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # as deployed: not installed
    import clone_operator.handlers  # noqa: F401  # first, as the entry point does (lean_imports)
    from clone_operator.cli import main as operator_main

    # Traced from here: the code imported above is not counted (about 39 MiB; tracing
    # 16 frames of every import would take minutes).
    tracemalloc.start(16)  # frames enough to reach the code that asked for it
    threading.Thread(target=watch, args=(Path(sys.argv[1]),), daemon=True).start()

    return int(operator_main(["run", "--dev"]) or 0)


if __name__ == "__main__":
    sys.exit(main())
