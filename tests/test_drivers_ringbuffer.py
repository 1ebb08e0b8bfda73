"""The ring buffer every source fills: wraparound, overrun accounting, snapshots."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers.ring_buffer import RingBuffer


def _chunk(start: int, n: int, n_channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Samples whose first channel counts from ``start``; timestamps are count / 100."""
    count = np.arange(start, start + n, dtype=np.float32)
    data = np.column_stack([count] + [count * (c + 2) for c in range(n_channels - 1)])
    return data.astype(np.float32), count.astype(np.float64) / 100.0


def test_wraparound_keeps_order_across_the_end_of_the_buffer():
    buf = RingBuffer(3, capacity=10)
    pos, seen = 0, []
    # Chunk sizes that do not divide the capacity, so writes and reads straddle the end.
    for start, n in [(0, 7), (7, 6), (13, 4), (17, 9)]:
        buf.write(*_chunk(start, n))
        data, ts, pos, lost = buf.read_since(pos)
        assert lost == 0
        np.testing.assert_array_equal(data[:, 0], np.arange(start, start + n))
        np.testing.assert_array_equal(data[:, 2], np.arange(start, start + n) * 3)
        np.testing.assert_allclose(ts, np.arange(start, start + n) / 100.0)
        seen.extend(data[:, 0].tolist())
    assert seen == list(range(26))
    assert buf.count == pos == 26


def test_overrun_reports_exactly_the_samples_a_slow_reader_missed():
    buf = RingBuffer(3, capacity=16)
    buf.write(*_chunk(0, 5))
    data, _, pos, lost = buf.read_since(0)
    assert (pos, lost) == (5, 0)
    # The reader sleeps while 40 more samples arrive in uneven chunks: only the last 16 remain.
    for start, n in [(5, 11), (16, 13), (29, 16)]:
        buf.write(*_chunk(start, n))
    data, ts, pos, lost = buf.read_since(pos)
    assert pos == 45
    assert lost == 45 - 16 - 5
    np.testing.assert_array_equal(data[:, 0], np.arange(29, 45))
    np.testing.assert_allclose(ts, np.arange(29, 45) / 100.0)


def test_a_chunk_longer_than_the_buffer_keeps_its_tail_and_counts_every_sample():
    buf = RingBuffer(3, capacity=8)
    buf.write(*_chunk(0, 3))
    buf.write(*_chunk(3, 20))
    assert buf.count == 23
    data, _, pos, lost = buf.read_since(0)
    assert (pos, lost) == (23, 15)
    np.testing.assert_array_equal(data[:, 0], np.arange(15, 23))
    latest, latest_ts = buf.latest(5)
    np.testing.assert_array_equal(latest[:, 0], np.arange(18, 23))
    np.testing.assert_allclose(latest_ts, np.arange(18, 23) / 100.0)


def test_snapshots_are_copies_that_later_writes_do_not_change():
    buf = RingBuffer(3, capacity=4)
    buf.write(*_chunk(0, 4))
    snap, _ = buf.latest(4)
    buf.write(*_chunk(4, 4))
    np.testing.assert_array_equal(snap[:, 0], [0, 1, 2, 3])


def test_a_chunk_of_the_wrong_width_is_refused():
    buf = RingBuffer(3, capacity=4)
    with pytest.raises(ValueError, match="3 channels"):
        buf.write(np.zeros((2, 4), np.float32), np.zeros(2))
    assert buf.count == 0


def test_concurrent_writer_and_reader_see_every_sample_once_in_order():
    buf = RingBuffer(3, capacity=4096)
    total = 200_000

    def writer() -> None:
        start = 0
        while start < total:
            n = min(37, total - start)
            buf.write(*_chunk(start, n))
            start += n

    seen: list[np.ndarray] = []
    pos, lost_total = 0, 0
    t = threading.Thread(target=writer)
    t.start()
    while t.is_alive() or pos < buf.count:
        data, _, pos, lost = buf.read_since(pos)
        lost_total += lost
        seen.append(data[:, 0])
    t.join()
    counts = np.concatenate(seen)
    # Whatever the reader missed is reported, and what it got is contiguous and in order.
    assert len(counts) + lost_total == total
    assert np.all(np.diff(counts) >= 1)
    # ...and the holes in the count are exactly the samples reported lost.
    assert counts[0] + np.sum(np.diff(counts) - 1) == lost_total
    assert counts[-1] == total - 1


def test_a_hold_is_never_overwritten_and_what_does_not_fit_is_counted():
    buf = RingBuffer(3, capacity=10)
    buf.hold("rec", 0)
    assert buf.write(*_chunk(0, 7)) == 7
    assert buf.room() == 3
    # 6 more arrive, only 3 fit beside the held 7: the rest is refused, not written over.
    assert buf.write(*_chunk(7, 6)) == 3
    assert buf.dropped == 3 and buf.count == 10
    parts = buf.view_since("rec")
    np.testing.assert_array_equal(np.concatenate([d[:, 0] for d, _ in parts]), np.arange(10))
    buf.hold("rec", 10)  # written to disk: the room comes back
    assert buf.room() == 10
    buf.release("rec")
    assert buf.write(*_chunk(10, 25)) == 25  # no holds: a long chunk keeps its tail
    assert buf.dropped == 3


def test_views_for_the_holder_follow_the_wrap_without_copying():
    buf = RingBuffer(3, capacity=8)
    buf.hold("rec", 0)
    buf.write(*_chunk(0, 6))
    buf.hold("rec", 6)
    buf.write(*_chunk(6, 5))  # slots 6, 7, then 0, 1, 2
    parts = buf.view_since("rec")
    assert [len(ts) for _, ts in parts] == [2, 3]
    np.testing.assert_array_equal(np.concatenate([d[:, 0] for d, _ in parts]), np.arange(6, 11))
    assert all(np.shares_memory(d, buf._data) for d, _ in parts)


def test_claimed_slots_are_filled_in_place_and_published_by_commit():
    buf = RingBuffer(3, capacity=8)
    buf.write(*_chunk(0, 6))
    parts = buf.claim(5)  # 2 slots before the end, 3 after the wrap
    assert [len(ts) for _, ts in parts] == [2, 3]
    # While claimed, the three oldest samples are being overwritten: readers skip them...
    data, _, pos, lost = buf.read_since(0)
    np.testing.assert_array_equal(data[:, 0], [3, 4, 5])
    assert (pos, lost) == (6, 3)
    start = 6
    for d, ts in parts:
        d[:], ts[:] = _chunk(start, len(ts))
        start += len(ts)
    buf.commit(4)  # ...and only what was committed becomes visible
    data, _, pos, _ = buf.read_since(6)
    np.testing.assert_array_equal(data[:, 0], [6, 7, 8, 9])
    assert pos == buf.count == 10
    with pytest.raises(ValueError, match="claimed"):
        buf.commit(1)  # nothing is claimed any more


def test_a_claim_never_reaches_into_held_samples():
    buf = RingBuffer(2, capacity=6)
    buf.hold("rec", 0)
    buf.write(*_chunk(0, 4, n_channels=2))
    parts = buf.claim(100)
    assert sum(len(ts) for _, ts in parts) == 2
    buf.commit(0)
    assert buf.count == 4
