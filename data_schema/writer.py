"""Write a session file as data arrives.

The file is a plain HDF5 file (no SWMR): every append grows resizable datasets, and the writer
flushes at least every ``flush_interval`` seconds, so a crash, SIGKILL or power loss loses at
most about that much and the file still opens. See ``SPEC.md`` for the layout.
"""

from __future__ import annotations

import errno
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_schema import FORMAT, SCHEMA_VERSION
from data_schema.errors import DiskFullError, SessionExistsError, SessionFileError
from data_schema.types import Event, StreamInfo
from data_schema.versions import software_version, software_versions

PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

STR = h5py.string_dtype("utf-8")
EVENT_DTYPE = np.dtype(
    [("timestamp", "<f8"), ("source", STR), ("label", STR), ("value", STR), ("duration", "<f8")]
)
STROKE_DTYPE = np.dtype(
    [("stroke", "<i4"), ("timestamp", "<f8"), ("x", "<f4"), ("y", "<f4"), ("pressure", "<f4")]
)


def check_pseudonym(participant_id: str) -> str:
    """Return ``participant_id`` if it is a usable pseudonym, else raise ``ValueError``."""
    if not PSEUDONYM_RE.match(participant_id or ""):
        raise ValueError(
            f"participant id {participant_id!r} is not a pseudonym code: use letters, digits, "
            "'-', '_' or '.', at most 64 characters (e.g. P001); never a name"
        )
    return participant_id


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    text = str(exc)
    return any(s in text for s in ("errno = 28", "errno = 27", "No space left", "File too large"))


class SessionWriter:
    """Create a new session file and append to it as data arrives.

    Thread-safe: the recorder thread appends samples while other threads add events and
    memories. Never overwrites: the path must not exist.

    Parameters
    ----------
    path
        Where to create the file (``.h5``). Must not exist.
    participant_id
        The pseudonym the experimenter entered (never a name).
    session_id
        Defaults to a new random id.
    protocol
        Protocol name (and version) the session runs.
    flush_interval
        Seconds between flushes; at most this much is lost on a crash.
    attrs
        Extra root attributes (strings, numbers).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        participant_id: str,
        session_id: str | None = None,
        protocol: str = "",
        notes: str = "",
        flush_interval: float = 0.5,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        try:
            check_pseudonym(participant_id)
        except ValueError as exc:
            raise SessionFileError(str(exc)) from None
        if self.path.exists():
            raise SessionExistsError(
                f"{self.path} already exists; recall-lab never overwrites a file: choose "
                "another output name"
            )
        if not self.path.parent.exists():
            raise SessionFileError(
                f"folder {self.path.parent} does not exist: create it or choose another output"
            )
        self.flush_interval = float(flush_interval)
        self._lock = threading.RLock()
        self._closed = False
        self._failure: DiskFullError | None = None
        try:
            self._f = h5py.File(self.path, "x")
        except (OSError, FileExistsError) as exc:
            raise SessionFileError(f"cannot create {self.path}: {exc}") from None
        f = self._f
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["session_id"] = session_id or uuid.uuid4().hex[:12]
        f.attrs["participant_id"] = participant_id
        f.attrs["protocol"] = protocol
        f.attrs["started_at"] = utc_now_iso()
        f.attrs["software_version"] = software_version()
        f.attrs["software_versions"] = json.dumps(software_versions())
        f.attrs["clock"] = "lsl"
        f.attrs["clean_close"] = False
        f.attrs["notes"] = notes
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        f.create_group("streams")
        f.create_group("memories")
        f.create_group("derived")
        f.create_dataset("events", shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE, chunks=(256,))
        self._last_flush = 0.0
        self.flush()

    # ------------------------------------------------------------------ basics
    @property
    def session_id(self) -> str:
        return str(self._f.attrs["session_id"])

    @property
    def closed(self) -> bool:
        return self._closed

    def _guard(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise SessionFileError(f"{self.path} is already closed")

    def _fail(self, exc: BaseException) -> None:
        """Turn a write error into a clean stop that keeps what was written."""
        if _is_disk_full(exc):
            self._failure = DiskFullError(
                f"the disk holding {self.path} is full; recording stopped, everything up to "
                "the last flush is kept: free space and start a new file"
            )
        else:
            self._failure = DiskFullError(f"writing {self.path} failed ({exc}); recording stopped")
        try:
            self._f.flush()
        except Exception:
            pass
        raise self._failure from None

    def set_attrs(self, **attrs: Any) -> None:
        """Set root attributes (e.g. notes, protocol) while recording."""
        with self._lock:
            self._guard()
            for k, v in attrs.items():
                self._f.attrs[k] = v

    # ------------------------------------------------------------------ streams
    def add_stream(
        self, name: str, info: StreamInfo, *, clock: Mapping[str, Any] | None = None
    ) -> None:
        """Create ``/streams/<name>`` for a stream described by ``info``.

        ``clock`` describes how timestamps were put on the LSL clock (e.g. the UNIX-to-LSL
        offset for BrainFlow); it is stored as JSON in the ``clock_mapping`` attribute.
        """
        if not NAME_RE.match(name):
            raise SessionFileError(f"stream name {name!r}: use letters, digits, '-', '_', '.'")
        with self._lock:
            self._guard()
            if name in self._f["streams"]:
                raise SessionFileError(f"stream {name!r} already exists in {self.path}")
            g = self._f["streams"].create_group(name)
            n = info.n_channels
            rows = int(max(16, min(8192, 262_144 // (4 * max(n, 1)))))
            g.create_dataset(
                "data", shape=(0, n), maxshape=(None, n), dtype="<f4", chunks=(rows, max(n, 1))
            )
            g.create_dataset(
                "timestamps", shape=(0,), maxshape=(None,), dtype="<f8", chunks=(max(rows, 1024),)
            )
            g.attrs["channel_names"] = json.dumps(info.channel_names)
            g.attrs["channel_types"] = json.dumps(info.channel_types)
            g.attrs["units"] = json.dumps(info.units)
            g.attrs["nominal_rate"] = float(info.nominal_rate)
            g.attrs["stream_type"] = info.stream_type
            g.attrs["source"] = info.source
            g.attrs["description"] = json.dumps(info.description, default=str)
            g.attrs["clock_mapping"] = json.dumps(dict(clock or {"clock": "lsl"}), default=str)
            self._maybe_flush()

    def append(self, name: str, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append samples ``data`` [n x channels] with their LSL ``timestamps`` [n]."""
        data = np.asarray(data, dtype=np.float32)
        ts = np.asarray(timestamps, dtype=np.float64)
        if data.ndim != 2 or ts.ndim != 1 or len(ts) != data.shape[0]:
            raise ValueError(f"append {name!r}: data {data.shape} and timestamps {ts.shape}")
        if len(ts) == 0:
            return
        with self._lock:
            self._guard()
            g = self._f["streams"][name]
            d, t = g["data"], g["timestamps"]
            n0 = t.shape[0]
            try:
                d.resize(n0 + len(ts), axis=0)
                d[n0:] = data
                t.resize(n0 + len(ts), axis=0)
                t[n0:] = ts
                self._maybe_flush()
            except OSError as exc:
                self._fail(exc)

    def n_samples(self, name: str) -> int:
        with self._lock:
            return int(self._f["streams"][name]["timestamps"].shape[0])

    # ------------------------------------------------------------------ events
    def add_events(self, events: Iterable[Event]) -> None:
        """Append events (any order; the reader sorts by timestamp)."""
        rows = [(e.timestamp, e.source, e.label, e.value, e.duration) for e in events]
        if not rows:
            return
        arr = np.array(rows, dtype=EVENT_DTYPE)
        with self._lock:
            self._guard()
            ds = self._f["events"]
            n0 = ds.shape[0]
            try:
                ds.resize(n0 + len(arr), axis=0)
                ds[n0:] = arr
                self._maybe_flush()
            except OSError as exc:
                self._fail(exc)

    def add_event(self, event: Event) -> None:
        self.add_events([event])

    # ------------------------------------------------------------------ memories
    def memory_group(self, memory_id: str, **attrs: Any) -> str:
        """Create (or update the attributes of) ``/memories/<memory_id>``; returns its path."""
        if not NAME_RE.match(memory_id):
            raise SessionFileError(f"memory id {memory_id!r}: use letters, digits, '-', '_', '.'")
        with self._lock:
            self._guard()
            mems = self._f["memories"]
            g = mems[memory_id] if memory_id in mems else mems.create_group(memory_id)
            for k, v in attrs.items():
                g.attrs[k] = v
            self._maybe_flush()
            return g.name

    def set_description(self, memory_id: str, text: str, timestamp: float) -> None:
        """Store the participant's written description (replacing an earlier version)."""
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            if "description" in g:
                del g["description"]
            ds = g.create_dataset("description", data=text, dtype=STR)
            ds.attrs["timestamp"] = float(timestamp)
            self._maybe_flush()

    def add_sketch_points(self, memory_id: str, points: np.ndarray) -> None:
        """Append sketch points (``STROKE_DTYPE`` rows) as they are drawn."""
        pts = np.asarray(points, dtype=STROKE_DTYPE)
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            sk = g.require_group("sketch")
            if "strokes" not in sk:
                sk.create_dataset(
                    "strokes", shape=(0,), maxshape=(None,), dtype=STROKE_DTYPE, chunks=(1024,)
                )
            ds = sk["strokes"]
            n0 = ds.shape[0]
            try:
                ds.resize(n0 + len(pts), axis=0)
                ds[n0:] = pts
                self._maybe_flush()
            except OSError as exc:
                self._fail(exc)

    def set_sketch_image(
        self, memory_id: str, png: bytes, timestamp: float, *, width: int, height: int
    ) -> None:
        """Store the finished sketch as PNG bytes (replacing an earlier version)."""
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            sk = g.require_group("sketch")
            if "image_png" in sk:
                del sk["image_png"]
            ds = sk.create_dataset("image_png", data=np.frombuffer(png, dtype=np.uint8))
            ds.attrs.update(timestamp=float(timestamp), width=int(width), height=int(height))
            self._maybe_flush()

    def append_melody(
        self,
        memory_id: str,
        audio: np.ndarray,
        *,
        sample_rate: int,
        origin: str,
        start_timestamp: float | None = None,
    ) -> None:
        """Append guiding-melody audio (float32 [n x channels], -1..1) as it is recorded.

        ``origin`` says where it came from: ``microphone`` (hummed) or ``file:<name>``.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            mel = g.require_group("melody")
            if "audio" not in mel:
                mel.create_dataset(
                    "audio",
                    shape=(0, audio.shape[1]),
                    maxshape=(None, audio.shape[1]),
                    dtype="<f4",
                    chunks=(16384, audio.shape[1]),
                )
                mel.attrs["sample_rate"] = int(sample_rate)
                mel.attrs["origin"] = origin
                if start_timestamp is not None:
                    mel.attrs["start_timestamp"] = float(start_timestamp)
            ds = mel["audio"]
            if int(mel.attrs["sample_rate"]) != int(sample_rate):
                raise SessionFileError("melody audio appended at a different sample rate")
            n0 = ds.shape[0]
            try:
                ds.resize(n0 + len(audio), axis=0)
                ds[n0:] = audio
                self._maybe_flush()
            except OSError as exc:
                self._fail(exc)

    # ------------------------------------------------------------------ flushing
    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def maybe_flush(self) -> None:
        """Flush if ``flush_interval`` has passed since the last flush."""
        with self._lock:
            if not self._closed and self._failure is None:
                self._maybe_flush()

    def flush(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._f.flush()
            except OSError as exc:
                self._fail(exc)
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Close properly: sets ``clean_close`` and ``ended_at``. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._failure is None:
                    self._f.attrs["ended_at"] = utc_now_iso()
                    self._f.attrs["clean_close"] = True
                else:
                    self._f.attrs["ended_at"] = utc_now_iso()
                    self._f.attrs["stop_reason"] = str(self._failure)
                self._f.flush()
            except OSError:
                pass  # disk full: the file keeps clean_close = False, data up to last flush
            finally:
                try:
                    self._f.close()
                except Exception:
                    pass
                self._closed = True

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
