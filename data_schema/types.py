"""Plain data types shared by sources, the session file and the offline stages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# Units as stored in the file. ``uV`` for EEG from BrainFlow (it reports microvolts), ``V``
# for recordings imported through MNE (which works in volts); the reader converts to volts for
# MNE. These are the strings the spec allows for voltage channels.
UNIT_SCALE_TO_VOLTS: dict[str, float] = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6, "nV": 1e-9}

# How LSL and XDF descriptions spell units ("microvolts"), lower-cased, mapped to the unit strings
# the session file uses.
UNITS_FROM_LSL: dict[str, str] = {
    "microvolts": "uV",
    "microvolt": "uV",
    "uv": "uV",
    "µv": "uV",
    "millivolts": "mV",
    "millivolt": "mV",
    "mv": "mV",
    "volts": "V",
    "volt": "V",
    "v": "V",
    "nanovolts": "nV",
    "nv": "nV",
}


@dataclass
class StreamInfo:
    """What a stream is: the description a source gives and the file stores.

    Parameters
    ----------
    name
        Stream name, e.g. ``"eeg"`` or the LSL stream name.
    channel_names, channel_types, units
        One entry per channel. Types follow MNE's names (``eeg``, ``eog``, ``ecg``, ``emg``,
        ``misc``, ``stim``, ``resp``, ``bio``); units are as stored (``uV``, ``V``, ``counts``,
        ``a.u.``...).
    nominal_rate
        Samples per second the device promises; ``0`` for irregular streams.
    stream_type
        LSL content type (``EEG``, ``Markers``, ``Accelerometer``...).
    source
        Where it came from, e.g. ``brainflow:synthetic`` or ``lsl:MyAmp``.
    description
        Free-form device description (manufacturer, model, serial, board id...).
    """

    name: str
    channel_names: list[str]
    channel_types: list[str]
    units: list[str]
    nominal_rate: float
    stream_type: str = "EEG"
    source: str = ""
    description: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.channel_names)
        if len(self.channel_types) != n or len(self.units) != n:
            raise ValueError(
                f"stream {self.name!r}: {n} channel names but {len(self.channel_types)} types "
                f"and {len(self.units)} units; give one of each per channel"
            )
        if self.nominal_rate < 0:
            raise ValueError(f"stream {self.name!r}: nominal rate must be >= 0")

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> StreamInfo:
        return cls(**json.loads(text))


@dataclass
class VideoInfo:
    """What a video stream is: JPEG frames of one camera (``/videos/<name>`` in the file).

    Parameters
    ----------
    name
        Stream name in the file (``video`` by default).
    width, height
        Frame size in pixels, as stored.
    nominal_rate
        Frames per second the camera (or the video file) promises; 0 when unknown.
    source
        Where it came from: ``v4l2:/dev/video0``, ``file:<name>``.
    codec
        How each frame is stored (``jpeg``).
    description
        Device details (driver, pixel format, JPEG quality...).
    """

    name: str
    width: int
    height: int
    nominal_rate: float
    source: str = ""
    codec: str = "jpeg"
    description: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """Something that happened at one instant on the LSL clock.

    Parameters
    ----------
    timestamp
        Seconds on the LSL clock (``pylsl.local_clock()``).
    source
        Who produced it: ``keyboard``, ``protocol``, ``brainflow``, ``lsl:<stream>``,
        ``recorder``, ``replay``...
    label
        What it is, e.g. ``key_down``, ``phase_start``, ``gap``, ``marker``.
    value
        Its payload as text (a key name, a phase id, a marker value, JSON for structured data).
    duration
        Seconds, ``0`` for instantaneous events.
    """

    timestamp: float
    source: str
    label: str
    value: str = ""
    duration: float = 0.0


def events_from_mapping(rows: Sequence[Mapping[str, Any]]) -> list[Event]:
    """Build events from dict-like rows (e.g. JSON)."""
    return [
        Event(
            float(r["timestamp"]),
            str(r.get("source", "")),
            str(r.get("label", "")),
            str(r.get("value", "")),
            float(r.get("duration", 0.0)),
        )
        for r in rows
    ]
