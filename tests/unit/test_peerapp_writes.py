"""The live test app's write log: what a volume holds is read back exactly, a torn record
or a gap never passes for whole (tests/app/peerapp.py, the consistency hooks' live test)."""

from __future__ import annotations

from tests.app.peerapp import check_log, record_line


def log(*seqs: int) -> str:
    return "".join(record_line(s) for s in seqs)


def test_a_whole_log_counts_its_records() -> None:
    assert check_log("") == {"records": 0, "torn": False, "gaps": 0}
    assert check_log(log(1, 2, 3)) == {"records": 3, "torn": False, "gaps": 0}


def test_a_record_cut_mid_write_is_torn_and_not_counted() -> None:
    text = log(1, 2) + record_line(3)[:17]
    assert check_log(text) == {"records": 2, "torn": True, "gaps": 0}


def test_gaps_disorder_and_corruption_are_seen() -> None:
    assert check_log(log(1, 3))["gaps"] == 1
    assert check_log(log(2, 1))["gaps"] == 2
    corrupted = log(1).replace("a", "b", 1).replace("0", "1", 1) + log(2)
    assert check_log(corrupted)["gaps"] >= 1
    assert check_log("1 nothex\n")["gaps"] == 1
