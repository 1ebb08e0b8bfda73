"""Clock handling: UNIX-to-LSL mapping and the dejittering of LSL timestamps."""

from __future__ import annotations

import time

import numpy as np
import pytest

from drivers.clock import Dejitter, UnixToLslMapping, local_clock


def _arrival_stamped(true_times: np.ndarray, rate: float, chunk: int, rng) -> np.ndarray:
    """Timestamps as a sender that stamps each chunk on arrival gives them: the last sample
    of a chunk gets the arrival time (late by a random 0-10 ms), earlier ones are back-dated
    by the nominal period."""
    out = np.empty_like(true_times)
    for start in range(0, len(true_times), chunk):
        stop = min(start + chunk, len(true_times))
        arrival = true_times[stop - 1] + rng.uniform(0.0, 0.010)
        out[start:stop] = arrival - (stop - 1 - np.arange(start, stop)) / rate
    return out


def test_dejitter_removes_arrival_jitter_and_follows_a_drifting_device_clock():
    rng = np.random.default_rng(1)
    rate, chunk = 500.0, 10
    # The amplifier runs 80 ppm fast against this computer: 60 s of samples.
    true = 1000.0 + np.arange(30_000) / (rate * (1 + 80e-6))
    stamped = _arrival_stamped(true, rate, chunk, rng)
    dejitter = Dejitter(rate)
    out = np.concatenate([dejitter(stamped[i : i + chunk]) for i in range(0, len(true), chunk)])
    settled = slice(5000, None)  # after 10 s
    err, raw_err = out[settled] - true[settled], stamped[settled] - true[settled]
    # The constant part (mean transport delay, ~5 ms here) cannot be known; the jitter can.
    assert np.std(err) < 0.1 * np.std(raw_err)
    assert np.max(np.abs(err - err.mean())) < 1e-3 < np.max(np.abs(raw_err - raw_err.mean()))
    # The fitted period follows the drift instead of assuming the nominal rate.
    assert np.median(np.diff(out[settled])) == pytest.approx(true[1] - true[0], rel=1e-5)
    assert np.all(np.diff(out) > 0)
    assert dejitter.segments == 1


def test_dejitter_starts_a_new_line_after_a_gap():
    rate = 250.0
    before = 500.0 + np.arange(1000) / rate
    after = before[-1] + 3.0 + np.arange(1000) / rate  # the sender was away for 3 s
    dejitter = Dejitter(rate)
    out_before = np.concatenate([dejitter(before[i : i + 25]) for i in range(0, 1000, 25)])
    first_after = dejitter(after[:10])  # no reset() call: the jump itself is noticed
    np.testing.assert_allclose(out_before, before, atol=1e-6)
    np.testing.assert_allclose(first_after, after[:10], atol=1e-6)
    assert dejitter.segments == 2
    dejitter.reset()  # what the LSL source does when its base class reports a gap
    np.testing.assert_allclose(dejitter(after[10:20] + 0.2), after[10:20] + 0.2, atol=1e-6)
    assert dejitter.segments == 3


def test_dejitter_needs_a_rate():
    with pytest.raises(ValueError, match="nominal rate"):
        Dejitter(0.0)


def test_unix_to_lsl_mapping_puts_unix_times_on_the_lsl_clock():
    mapping = UnixToLslMapping.measure()
    assert mapping.uncertainty < 0.01
    lsl_now, unix_now = local_clock(), time.time()
    assert mapping.to_lsl(np.array([unix_now]))[0] == pytest.approx(lsl_now, abs=0.01)
    stored = mapping.as_dict()
    assert stored["from"] == "unix" and stored["offset"] == mapping.offset
