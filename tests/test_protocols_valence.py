"""Valence reporting: discrete keys (held keys, auto-repeat, neutral timeout) and the
continuous cursor (exact samples on a fixed grid), and the ``valence`` stream in a real file."""

from __future__ import annotations

import time

import numpy as np
import pytest

from data_schema.reader import read_session
from data_schema.recorder import Recorder
from data_schema.writer import SessionWriter
from protocols import ValenceChange, ValenceConfig, ValenceReporter, normalize_key
from protocols.valence_source import ValenceSource

DISCRETE = ValenceConfig(mode="discrete", positive_key="1", negative_key="3", neutral_after=2.0)
CONTINUOUS = ValenceConfig(
    mode="continuous", positive_key="up", negative_key="down", speed=0.5, rate=10.0
)


def test_key_names_are_normalised():
    assert normalize_key(" ") == "space"
    assert normalize_key("Key_Space") == "space"
    assert normalize_key("Return") == "enter"
    assert normalize_key("ArrowUp") == "up"
    assert normalize_key("A") == "a"


def test_discrete_press_then_neutral_after_the_hold_time():
    r = ValenceReporter(DISCRETE, 0.0)
    assert r.key_down("1", 1.0) is True
    r.key_up("1", 1.2)
    r.advance(3.1)
    assert r.state == "positive"  # 1.9 s after release
    r.advance(3.3)
    assert r.state == "neutral"
    assert r.pop_changes() == [ValenceChange(1.0, "positive"), ValenceChange(3.2, "neutral")]


def test_a_held_key_stays_reported_however_long():
    r = ValenceReporter(DISCRETE, 0.0)
    r.key_down("3", 1.0)
    r.advance(30.0)
    assert r.state == "negative"
    r.key_up("3", 30.0)
    r.advance(31.9)
    assert r.state == "negative"
    r.advance(32.0)
    assert r.state == "neutral"
    assert [c.timestamp for c in r.pop_changes()] == [1.0, 32.0]


def test_auto_repeat_is_not_a_new_press_and_does_not_extend_the_report():
    r = ValenceReporter(DISCRETE, 0.0)
    r.key_down("1", 1.0)
    for k in range(1, 30):
        assert r.key_down("1", 1.5 + k / 30, auto_repeat=True) is False
    r.key_up("1", 2.5)
    assert r.presses == {"positive": 1, "negative": 0}
    assert r.auto_repeats == 29
    r.advance(10.0)
    assert r.pop_changes() == [ValenceChange(1.0, "positive"), ValenceChange(4.5, "neutral")]


def test_taps_closer_than_the_hold_time_form_one_episode():
    r = ValenceReporter(DISCRETE, 0.0)
    for t in (1.0, 2.5, 4.0, 5.5):
        r.key_down("1", t)
        r.key_up("1", t + 0.1)
    r.advance(20.0)
    assert r.pop_changes() == [ValenceChange(1.0, "positive"), ValenceChange(7.6, "neutral")]
    assert r.presses["positive"] == 4


def test_switching_keys_and_both_held():
    r = ValenceReporter(DISCRETE, 0.0)
    r.key_down("1", 1.0)
    r.key_down("3", 1.5)  # most recent press wins
    assert r.state == "negative"
    r.key_up("3", 2.0)  # "1" is still held
    assert r.state == "positive"
    r.key_up("1", 2.5)
    r.advance(5.0)
    assert [(c.timestamp, c.valence) for c in r.pop_changes()] == [
        (1.0, "positive"),
        (1.5, "negative"),
        (2.0, "positive"),
        (4.5, "neutral"),
    ]


def test_auto_repeat_of_a_key_held_before_the_phase_counts_as_held():
    r = ValenceReporter(DISCRETE, 10.0)
    assert r.key_down("1", 10.2, auto_repeat=True) is False
    assert r.state == "positive"
    assert r.presses["positive"] == 0
    r.key_up("1", 11.0)
    r.advance(13.0)
    assert r.state == "neutral"


def test_other_keys_and_releases_without_press_change_nothing():
    r = ValenceReporter(DISCRETE, 0.0)
    assert r.key_down("space", 1.0) is False
    assert r.key_up("1", 1.5) is False
    r.advance(10.0)
    assert r.pop_changes() == []
    assert r.meaning("space") is None and r.meaning("1") == "positive"


def test_off_mode_reports_nothing():
    r = ValenceReporter(ValenceConfig(mode="off"), 0.0)
    assert r.key_down("1", 1.0) is False
    r.advance(5.0)
    assert r.state == "neutral" and r.pop_changes() == []


def test_continuous_cursor_is_sampled_exactly_on_the_grid():
    r = ValenceReporter(CONTINUOUS, 100.0)
    r.key_down("up", 100.25)
    r.key_up("up", 101.25)  # +0.5 over one second
    r.key_down("down", 102.0)
    r.advance(103.0)
    values, ts = r.pop_samples()
    np.testing.assert_allclose(ts, 100.0 + np.arange(31) / 10.0)
    up = (np.clip(ts, 100.25, 101.25) - 100.25) * 0.5
    down = np.clip(ts - 102.0, 0, None) * 0.5
    np.testing.assert_allclose(values, up - down, atol=1e-6)
    assert r.cursor == pytest.approx(0.0, abs=1e-9)  # back where it started at 103 s


def test_continuous_cursor_clips_at_the_ends_of_the_scale():
    r = ValenceReporter(CONTINUOUS, 0.0)
    r.key_down("down", 0.0)
    r.advance(10.0)  # would reach -5 without clipping
    assert r.cursor == -1.0
    r.key_up("down", 10.0)
    r.key_down("up", 10.0)
    r.advance(11.0)
    assert r.cursor == pytest.approx(-0.5)  # moves back at once, no wind-up
    values, _ = r.pop_samples()
    assert values.min() == -1.0 and values.max() <= 1.0


def test_continuous_samples_do_not_depend_on_how_often_it_is_advanced():
    def run(step: float) -> tuple[np.ndarray, np.ndarray]:
        r = ValenceReporter(CONTINUOUS, 0.0)
        presses = [(0.33, "up", True), (1.71, "up", False), (2.2, "down", True),
                   (2.9, "down", False)]  # fmt: skip
        t = 0.0
        for when, key, down in presses:
            while t + step < when:
                t += step
                r.advance(t)
            (r.key_down if down else r.key_up)(key, when)
        r.advance(4.0)
        return r.pop_samples()

    fine, coarse = run(0.001), run(0.37)
    np.testing.assert_allclose(fine[1], coarse[1])
    np.testing.assert_allclose(fine[0], coarse[0], atol=1e-6)
    assert fine[0].max() == pytest.approx(0.5 * (1.71 - 0.33), abs=1e-6)


def test_valence_source_writes_the_valence_stream(tmp_path):
    path = tmp_path / "v.h5"
    writer = SessionWriter(path, participant_id="T01")
    source = ValenceSource(rate=10.0)
    recorder = Recorder(writer, {"valence": source})
    recorder.start()
    r = ValenceReporter(CONTINUOUS, 50.0)
    r.key_down("up", 50.0)
    r.advance(51.0)
    source.push(*r.pop_samples())
    r.key_up("up", 51.0)
    r.advance(52.0)
    source.push(*r.pop_samples())
    deadline = time.monotonic() + 10
    while recorder.status().samples_written.get("valence", 0) < 21 and time.monotonic() < deadline:
        time.sleep(0.02)
    recorder.stop()
    session = read_session(path)
    stream = session.streams["valence"]
    assert stream.info.stream_type == "Rating" and stream.info.nominal_rate == 10.0
    assert stream.data.shape == (21, 1)
    np.testing.assert_allclose(stream.timestamps, 50.0 + np.arange(21) / 10.0)
    np.testing.assert_allclose(stream.data[:11, 0], np.arange(11) * 0.05, atol=1e-6)
    np.testing.assert_allclose(stream.data[10:, 0], 0.5, atol=1e-6)
    assert not [e for e in session.events if e.label == "gap_start"]  # idle is not a stall
