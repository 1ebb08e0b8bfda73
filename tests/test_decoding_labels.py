"""Valence labels from key presses and ratings follow the RYM rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_schema.types import Event
from decoding.labels import (
    LabelRules,
    continuous_valence,
    discrete_labels,
    valence_chunks,
    valence_presses,
)


def key(t: float, label: str, valence: str, k: str = "p", auto_repeat: bool = False) -> Event:
    value = {"key": k, "valence": valence, "auto_repeat": auto_repeat}
    return Event(t, "keyboard", label, json.dumps(value))


def press(t: float, valence: str, hold: float = 0.2, k: str = "p") -> list[Event]:
    return [key(t, "key_down", valence, k), key(t + hold, "key_up", valence, k)]


def test_presses_less_than_gap_apart_merge_into_one_chunk() -> None:
    events = press(10, "positive") + press(11.5, "positive") + press(13.0, "positive")
    chunks = valence_chunks(valence_presses(events))
    assert len(chunks) == 1
    assert chunks[0].start == 10 and chunks[0].end == pytest.approx(13.2)
    assert chunks[0].valence == "positive" and chunks[0].n_presses == 3


def test_presses_further_apart_than_gap_stay_separate_and_gap_is_configurable() -> None:
    events = press(10, "negative", k="n") + press(12.5, "negative", k="n")  # 2.3 s apart
    assert len(valence_chunks(valence_presses(events))) == 2
    merged = valence_chunks(valence_presses(events), LabelRules(merge_gap=3.0))
    assert len(merged) == 1


def test_other_valence_ends_chunk_and_samples_outside_chunks_are_neutral() -> None:
    events = press(10, "positive") + press(11, "negative", k="n") + press(12, "positive")
    chunks = valence_chunks(valence_presses(events))
    assert [c.valence for c in chunks] == ["positive", "negative", "positive"]
    times = np.arange(8.0, 15.0, 0.1)
    y = discrete_labels(times, chunks)
    assert set(np.unique(y)) == {-1, 0, 1}
    assert (y[times < 10] == 0).all() and (y[times > 12.3] == 0).all()
    assert y[np.argmin(abs(times - 10.1))] == 1
    assert y[np.argmin(abs(times - 11.1))] == -1


def test_auto_repeat_missing_key_up_and_other_keys() -> None:
    events = [
        key(5.0, "key_down", "positive"),
        key(5.5, "key_down", "positive", auto_repeat=True),
        key(6.0, "key_down", "positive", auto_repeat=True),
        key(6.2, "key_up", "positive"),
        Event(7.0, "keyboard", "key_down", json.dumps({"key": "space", "auto_repeat": False})),
        key(20.0, "key_down", "negative", k="n"),  # key_up lost
    ]
    presses = valence_presses(events)
    assert [(p.start, p.end, p.valence) for p in presses] == [
        (5.0, 6.2, "positive"),
        (20.0, pytest.approx(20.2), "negative"),
    ]


def test_continuous_ratings_are_held_until_the_next() -> None:
    v = continuous_valence(np.array([0.0, 1.0, 1.5, 3.0]), np.array([1.0, 2.0]), [0.5, -2.0])
    assert np.isnan(v[0])
    assert v[1] == 0.5 and v[2] == 0.5
    assert v[3] == -1.0  # clipped to the scale


def test_reported_trajectory_from_a_session_file(tmp_path) -> None:
    """Key presses win over ratings in ``auto``; a rating stream gives continuous valence."""
    from data_schema.reader import read_session
    from data_schema.types import StreamInfo
    from data_schema.writer import SessionWriter
    from decoding.labels import NoValenceReportsError, reported_trajectory

    path = tmp_path / "s.h5"
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream("eeg", StreamInfo("eeg", ["Fz", "Cz"], ["eeg"] * 2, ["uV"] * 2, 100.0))
        w.append("eeg", np.zeros((3000, 2), np.float32), 50 + np.arange(3000) / 100)
        w.add_stream("valence", StreamInfo("valence", ["valence"], ["misc"], ["a.u."], 0.0))
        w.append("valence", np.array([[0.8], [-0.6]], np.float32), np.array([55.0, 60.0]))
        w.add_events(press(70, "negative", k="n"))
    s = read_session(path)
    rep = reported_trajectory(s, rate=10)
    assert rep.kind == "discrete" and rep.times[0] == 50
    assert rep.label[np.argmin(abs(rep.times - 70.1))] == -1
    cont = reported_trajectory(s, rate=10, kind="continuous")
    at = lambda t: int(np.argmin(abs(cont.times - t)))  # noqa: E731
    assert np.isnan(cont.valence[at(54)]) and cont.label[at(54)] == 0
    assert cont.valence[at(57)] == pytest.approx(0.8) and cont.label[at(57)] == 1
    assert cont.label[at(65)] == -1
    s.events = []
    with pytest.raises(NoValenceReportsError, match="no valence key presses"):
        reported_trajectory(s, kind="discrete")
