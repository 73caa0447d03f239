"""Benchmark: the identity rewrite and its guard on hostile text, 1 MB at a time.

    make bench-guard

No cluster: the pure functions the engine and the webhook run on every string of a
source's pod template and every value of its ConfigMaps and Secrets. For each
shape of text (1 MB of one letter; of short tokens; of dots; of template syntax;
dense references to the source; a reference then a megabyte of one token) it
prints the median of 7 runs of `Rename.text` and of the guard's scan, and the
ratio of 1 MB to 100 kB (10 for linear work; the backtracking pattern this
replaced had ~100: 2 kB 0.04 s, 16 kB 1.9 s). Target (issue 21): a 1 MB value is
scanned in under 0.1 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from clone_operator.builders.identity import Identity, Rename

RENAME = Rename(
    Identity("search", "search-peers", "prod"), Identity("search-copy", "search-copy", "prod")
)
MB = 1_000_000
SHAPES: dict[str, Callable[[int], str]] = {
    "one letter": lambda n: "a" * n,
    "short tokens a:a:": lambda n: "a:" * (n // 2),
    "dots a.a.": lambda n: "a." * (n // 2),
    "templates $($(": lambda n: "$(" * (n // 2),
    "anchors search-search-": lambda n: "search-" * (n // 7),
    "pod names, dense": lambda n: "search-0.search-peers.prod " * (n // 27),
    "distinct pod names": lambda n: " ".join(f"search-{i}" for i in range(n // 11)),
    "a reference, then one token": lambda n: "search-0.search-peers.prod " + "a" * n,
}


def median_ms(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(7):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    print(f"{'text':30} {'rewrite 1 MB':>13} {'guard 1 MB':>11} {'ratio 1 MB/100 kB':>18}")
    worst = 0.0
    for name, make in SHAPES.items():
        big, small = make(MB), make(MB // 10)
        rewrite = median_ms(lambda t=big: RENAME.text(t))
        guard = median_ms(lambda t=big: list(RENAME.references(t)))
        ratio = guard / max(median_ms(lambda t=small: list(RENAME.references(t))), 1e-3)
        worst = max(worst, guard)
        print(f"{name:30} {rewrite:10.1f} ms {guard:8.1f} ms {ratio:18.1f}")
    print(f"slowest guard scan of 1 MB: {worst:.1f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()
