"""The webhook spool on disk: framing, torn tails, the bound, who may drain what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringback.inbox.spool import (
    Drainer,
    Spool,
    SpooledEvent,
    SpoolFull,
    read_segment,
)

AT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def event(index: int, body: str = "") -> SpooledEvent:
    return SpooledEvent(
        "twilio",
        "dial_result",
        "glow-downtown",
        {"CallSid": f"CA{index:032x}", "DialCallStatus": "no-answer", "Body": body},
        AT + timedelta(seconds=index),
    )


def test_records_round_trip_and_drain_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for index in range(5):
        spool.append(event(index, "héllo ✓"))
    assert spool.pending() == 5
    assert spool.stats().depth == 5
    assert spool.stats().oldest == AT
    got: list[SpooledEvent] = []
    assert spool.drain(got.extend) == 5
    assert got == [event(index, "héllo ✓") for index in range(5)]
    assert spool.pending() == 0
    assert spool.segments() == []
    assert spool.stats().depth == 0


def test_a_torn_tail_is_detected_and_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for index in range(3):
        spool.append(event(index))
    spool.seal()
    (path,) = spool.segments()
    whole = path.read_bytes()
    # A crash mid-append: half of a fourth record.
    path.write_bytes(whole + event(3).encode()[:20])
    segment = read_segment(path.read_bytes())
    assert segment.records == [event(index) for index in range(3)]
    assert segment.skipped_bytes == 20
    got: list[SpooledEvent] = []
    Spool(tmp_path, 1 << 20).drain(got.extend)
    assert got == [event(index) for index in range(3)]
    assert not path.exists()


def test_a_corrupt_record_in_the_middle_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    records = [event(index).encode() for index in range(3)]
    middle = bytearray(records[1])
    middle[-3] ^= 0xFF  # a flipped byte: the checksum no longer matches
    segment = read_segment(records[0] + bytes(middle) + records[2])
    assert segment.records == [event(0), event(2)]
    assert segment.skipped_bytes == len(middle)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 6), cut=st.data())
def test_any_truncation_reads_back_a_prefix_of_the_records(count: int, cut: st.DataObject) -> None:
    encoded = [event(index, "x" * index).encode() for index in range(count)]
    data = b"".join(encoded)
    length = cut.draw(st.integers(0, len(data)))
    segment = read_segment(data[:length])
    whole = 0
    total = 0
    for record in encoded:
        if total + len(record) <= length:
            whole += 1
            total += len(record)
    assert segment.records == [event(index, "x" * index) for index in range(whole)]
    assert segment.skipped_bytes == length - total


def test_a_full_spool_refuses_and_writes_nothing(tmp_path: Path) -> None:
    size = len(event(0).encode())
    spool = Spool(tmp_path, size * 2)
    spool.append(event(0))
    spool.append(event(1))
    before = sum(p.stat().st_size for p in spool.segments())
    with pytest.raises(SpoolFull, match="limit"):
        spool.append(event(2))
    assert sum(p.stat().st_size for p in spool.segments()) == before
    assert spool.pending() == 2
    spool.drain(lambda batch: None)
    spool.append(event(2))  # room again once drained
    assert spool.pending() == 1


def test_a_live_process_segment_is_left_to_it_a_dead_one_is_drained(tmp_path: Path) -> None:
    live, other = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    live.append(event(0))
    got: list[SpooledEvent] = []
    assert other.drain(got.extend) == 0  # still being appended to: not other's to drain
    assert got == []
    live.close()  # the process died without draining
    assert other.drain(got.extend) == 1
    assert got == [event(0)]


def test_a_store_that_fails_leaves_the_segment_to_drain_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append(event(0))
    stored: list[SpooledEvent] = []

    def store_then_crash(batch: list[SpooledEvent]) -> None:
        stored.extend(batch)
        raise RuntimeError("crashed between store and delete")

    with pytest.raises(RuntimeError):
        spool.drain(store_then_crash)
    assert spool.pending() == 1
    assert spool.drain(stored.extend) == 1
    assert stored == [event(0), event(0)]  # stored twice: the database ignores the second
    assert spool.segments() == []


def test_the_drainer_backs_off_while_the_database_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append(event(0))
    failures = []

    def refuse(batch: list[SpooledEvent]) -> None:
        failures.append(len(batch))
        raise ConnectionRefusedError

    drainer = Drainer(spool, refuse, idle=0.5, max_delay=2.0)
    assert [drainer.drain_once() for _ in range(4)] == [1.0, 2.0, 2.0, 2.0]
    drainer.store = lambda batch: None
    assert drainer.drain_once() == 0.5
    assert spool.pending() == 0


def test_segments_another_process_drained_no_longer_count_as_pending(tmp_path: Path) -> None:
    mine, worker = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    mine.append(event(0))
    mine.seal()  # sealed: any process may drain it now
    got: list[SpooledEvent] = []
    assert worker.drain(got.extend) == 1
    assert mine.pending() == 1  # not yet noticed
    assert mine.drain(got.extend) == 0
    assert mine.pending() == 0
    assert got == [event(0)]
