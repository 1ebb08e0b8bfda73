"""Small session files for the interchange tests, built with the real SessionWriter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_schema.types import Event, StreamInfo
from data_schema.writer import SessionWriter

KEY_EVENT = json.dumps({"key": "1", "valence": "positive", "auto_repeat": False})
PHASE_EVENT = json.dumps({"phase": "recall-1", "kind": "recall", "memory": "m1"})


def make_session(
    path: Path,
    *,
    seconds: float = 2.0,
    rate: float = 250.0,
    n_channels: int = 4,
    participant: str = "P007",
    t0: float = 5000.0,
    event_times: tuple[float, ...] = (0.5, 1.0, 1.5),
) -> Path:
    """A session whose first channel counts samples (to prove none is lost or repeated).

    The other channels are noise of about 20 uV; timestamps follow the nominal rate from
    ``t0``; the clock mapping is BrainFlow's (``lsl = unix + offset``). Events: a valence key
    press, a protocol phase marker and a BrainFlow numeric marker, at ``event_times``.
    """
    n = round(seconds * rate)
    rng = np.random.default_rng(7)
    data = (rng.standard_normal((n, n_channels)) * 20).astype(np.float32)
    data[:, 0] = np.arange(n)
    ts = t0 + np.arange(n) / rate
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "P3", "P4"][:n_channels]
    info = StreamInfo(
        "eeg", names, ["eeg"] * n_channels, ["uV"] * n_channels, rate, "EEG", "brainflow:Synthetic"
    )
    kinds = [
        ("keyboard", "key_down", KEY_EVENT),
        ("protocol", "phase_start", PHASE_EVENT),
        ("brainflow", "marker", "3"),
    ]
    with SessionWriter(path, participant_id=participant, protocol="test") as w:
        w.add_stream("eeg", info, clock={"clock": "lsl", "from": "unix", "offset": -1.7e9})
        w.append("eeg", data, ts)
        w.add_events(Event(t0 + t, *kinds[i % len(kinds)]) for i, t in enumerate(event_times))
    return path
