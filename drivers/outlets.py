"""LSL outlets: the app's events as a marker stream, and any stream as a live amplifier.

:class:`MarkerOutlet` publishes events (key presses, protocol markers) as string markers so
LabRecorder records them beside the EEG. :class:`DataOutlet` publishes samples with their
timestamps and the channel labels, types and units in the stream description (the LSL
meta-data conventions LabRecorder, MNE-LSL and the OpenBCI GUI read), type ``EEG`` for EEG.

Both pass the event or sample timestamps (LSL clock) through to LSL, so a client that records
them gets the times the events happened, not the times they were pushed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Self

import numpy as np

from data_schema.errors import SourceError
from data_schema.reader import annotation_description
from data_schema.types import Event, StreamInfo

#: How units are spelled in LSL descriptions (the XDF/LSL meta-data convention).
LSL_UNITS = {"uV": "microvolts", "µV": "microvolts", "mV": "millivolts", "V": "volts"}

#: Marker text formats: ``label`` or ``label/value`` like the MNE annotations of a session
#: (``annotation``), or the whole event as JSON (``json``).
MARKER_FORMATS = ("annotation", "json")


def marker_text(event: Event, fmt: str = "annotation") -> str:
    """The string an event is published as."""
    if fmt == "json":
        return json.dumps(
            {
                "source": event.source,
                "label": event.label,
                "value": event.value,
                "duration": event.duration,
            },
            ensure_ascii=False,
        )
    return annotation_description(event)


def _pylsl():
    try:
        import pylsl
    except Exception as exc:  # liblsl missing or broken
        raise SourceError(f"LSL is not available ({exc}); install pylsl with liblsl") from None
    return pylsl


class _Outlet:
    """What both outlets share: a pylsl outlet behind a lock, closed once."""

    _outlet: object | None
    _lock: threading.Lock

    def have_consumers(self) -> bool:
        with self._lock:
            return self._outlet is not None and bool(self._outlet.have_consumers())

    def close(self, linger: float = 0.3) -> None:
        """Withdraw the stream. Safe to call twice.

        With consumers connected, wait ``linger`` seconds first: liblsl sends in the
        background, and destroying the outlet at once can cut off the last chunk.
        """
        with self._lock:
            outlet, self._outlet = self._outlet, None
        if outlet is not None and linger > 0 and outlet.have_consumers():
            time.sleep(linger)
        del outlet

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MarkerOutlet(_Outlet):
    """An LSL marker stream (type ``Markers``, one string channel, irregular rate).

    Parameters
    ----------
    name
        LSL stream name, e.g. ``recall-lab-markers-<session id>``.
    source_id
        Unique id so clients can reconnect after a restart; random if not given.
    fmt
        ``annotation`` (``label`` or ``label/value``) or ``json`` (the whole event).
    """

    def __init__(self, name: str, source_id: str | None = None, *, fmt: str = "annotation"):
        if fmt not in MARKER_FORMATS:
            raise ValueError(f"marker format {fmt!r}: use one of {MARKER_FORMATS}")
        pylsl = _pylsl()
        self.name = name
        self.fmt = fmt
        self.source_id = source_id or f"recall-lab-markers-{uuid.uuid4().hex[:12]}"
        info = pylsl.StreamInfo(
            name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, self.source_id
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "recall-lab")
        desc.append_child_value("marker_format", fmt)
        ch = desc.append_child("channels").append_child("channel")
        ch.append_child_value("label", "marker")
        ch.append_child_value("type", "Marker")
        self._outlet = pylsl.StreamOutlet(info)
        self._lock = threading.Lock()
        self.n_pushed = 0

    def push_event(self, event: Event) -> None:
        """Publish one event at its own timestamp (thread-safe)."""
        with self._lock:
            if self._outlet is None:
                return
            self._outlet.push_sample([marker_text(event, self.fmt)], float(event.timestamp))
            self.n_pushed += 1


class DataOutlet(_Outlet):
    """Publish a stream on LSL so any client sees it as a live device.

    Parameters
    ----------
    info
        The stream's description; channel labels, types and units go into the LSL ``desc``.
        ``stream_type`` becomes the LSL type (``EEG`` for EEG).
    source_id
        Unique id; random if not given.
    name
        LSL stream name (defaults to ``info.name``).
    """

    def __init__(self, info: StreamInfo, source_id: str | None = None, *, name: str | None = None):
        pylsl = _pylsl()
        self.info = info
        self.source_id = source_id or f"recall-lab-{uuid.uuid4().hex[:12]}"
        lsl_info = pylsl.StreamInfo(
            name or info.name,
            info.stream_type or "EEG",
            info.n_channels,
            info.nominal_rate if info.nominal_rate > 0 else pylsl.IRREGULAR_RATE,
            pylsl.cf_float32,
            self.source_id,
        )
        desc = lsl_info.desc()
        desc.append_child_value("manufacturer", str(info.description.get("manufacturer", "")))
        desc.append_child_value("source", info.source)
        channels = desc.append_child("channels")
        for label, kind, unit in zip(info.channel_names, info.channel_types, info.units):
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("type", kind.upper() if kind in ("eeg", "eog", "ecg") else kind)
            ch.append_child_value("unit", LSL_UNITS.get(unit, unit))
        acq = desc.append_child("acquisition")
        acq.append_child_value("software", "recall-lab")
        self._outlet = pylsl.StreamOutlet(lsl_info)
        self._lock = threading.Lock()
        self.n_pushed = 0

    def push_chunk(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Publish samples ``data`` [n x channels] with their LSL ``timestamps`` [n]."""
        ts = np.asarray(timestamps, dtype=np.float64)
        if len(ts) == 0:
            return
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.shape != (len(ts), self.info.n_channels):
            raise ValueError(f"chunk {data.shape} does not fit {self.info.n_channels} channels")
        with self._lock:
            if self._outlet is None:
                return
            self._outlet.push_chunk(data, ts.tolist())
            self.n_pushed += len(ts)
