"""The heap trimmer binds glibc's malloc_trim where there is one (the image: Debian)."""

from __future__ import annotations

import platform

import pytest

from clone_operator.services import memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_trim_is_bound_and_answers_whether_it_released_memory() -> None:
    trim = memory.trimmer()
    assert trim is not None
    freed = bytearray(64 * 2**20)  # a large block, then freed: something to give back
    del freed
    assert trim() in (0, 1)  # malloc_trim's documented answers
