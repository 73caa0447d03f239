"""Give the heap's free pages back to the operating system, now and then.

A burst of clones parses thousands of API bodies (the watch events, the responses).
CPython frees them, but glibc keeps the freed pages that sit between live allocations
until it is told otherwise, so without this the process's RSS climbs with every body
parsed and stays at the burst's peak. glibc's `malloc_trim(0)` hands them back (a few
milliseconds on this heap); where there is no glibc (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_EVERY_SECONDS = 10.0


def trimmer() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def trim_periodically(interval: float = TRIM_EVERY_SECONDS) -> None:
    """Run for the operator's life (a task of engine.lifecycle)."""
    trim = trimmer()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval)
        trim()
