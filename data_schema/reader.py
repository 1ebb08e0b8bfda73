"""Read a session file into numpy arrays and dataclasses, or into an ``mne.io.Raw``."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from data_schema import FORMAT, SCHEMA_VERSION
from data_schema.errors import SessionFileError
from data_schema.types import UNIT_SCALE_TO_VOLTS, Event, StreamInfo

if TYPE_CHECKING:
    import mne

MNE_CHANNEL_TYPES = {
    "eeg",
    "eog",
    "ecg",
    "emg",
    "misc",
    "stim",
    "resp",
    "bio",
    "seeg",
    "ecog",
    "gsr",
    "temperature",
}


@dataclass
class Stream:
    """One stream: samples [n x channels] (as stored, in ``info.units``) and LSL timestamps."""

    info: StreamInfo
    data: np.ndarray
    timestamps: np.ndarray
    clock_mapping: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def duration(self) -> float:
        if self.n_samples < 2:
            return 0.0
        return float(self.timestamps[-1] - self.timestamps[0])

    @property
    def effective_rate(self) -> float:
        """Samples per second measured from the timestamps (0 if fewer than 2 samples)."""
        if self.n_samples < 2 or self.duration <= 0:
            return 0.0
        return (self.n_samples - 1) / self.duration


@dataclass
class VideoStream:
    """One camera's frames (``/videos/<name>``): timestamps in memory, frames read on demand.

    Frames stay in the file; :meth:`jpeg` and :meth:`frame` open it for each call (use
    :meth:`jpegs` for a run of frames), so a long recording's video never has to fit in memory.
    """

    path: Path
    name: str
    timestamps: np.ndarray
    width: int
    height: int
    nominal_rate: float
    codec: str = "jpeg"
    source: str = ""
    clock_mapping: dict[str, Any] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.timestamps.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    def _index(self, i: int) -> int:
        n = self.n_frames
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"frame {i} of video {self.name!r}: it has {n} frames")
        return j

    def jpegs(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        """The encoded frames ``start..stop-1`` (default: to the end), read in one pass."""
        stop = self.n_frames if stop is None else min(int(stop), self.n_frames)
        start = max(0, int(start))
        if start >= stop:
            return []
        with open_session_file(self.path) as f:
            rows = f["videos"][self.name]["frames"][start:stop]
        return [np.asarray(r, dtype=np.uint8).tobytes() for r in rows]

    def jpeg(self, i: int) -> bytes:
        """Frame ``i`` as stored (JPEG bytes)."""
        j = self._index(i)
        return self.jpegs(j, j + 1)[0]

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` decoded: uint8 RGB ``[height x width x 3]``."""
        return decode_jpeg(self.jpeg(i))

    def nearest(self, t: float) -> int:
        """Index of the frame whose timestamp is nearest the LSL time ``t``."""
        if not self.n_frames:
            raise IndexError(f"video {self.name!r} holds no frames")
        k = int(np.clip(np.searchsorted(self.timestamps, t), 0, self.n_frames - 1))
        if k and abs(self.timestamps[k - 1] - t) <= abs(self.timestamps[k] - t):
            k -= 1
        return k


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes as a uint8 RGB array ``[height x width x 3]`` (Pillow, no video library)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass
class Memory:
    """What a participant produced for one memory."""

    memory_id: str
    attrs: dict[str, Any]
    description: str | None = None
    description_timestamp: float | None = None
    #: False for a draft (the phase ended before Submit); files before 1.1 say nothing: True
    description_submitted: bool | None = None
    sketch_strokes: np.ndarray | None = None  # STROKE_DTYPE rows
    sketch_png: bytes | None = None
    sketch_submitted: bool | None = None
    melody: np.ndarray | None = None  # float32 [n x channels]
    melody_rate: int | None = None
    melody_attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """A session file's contents."""

    path: Path
    attrs: dict[str, Any]
    streams: dict[str, Stream]
    events: list[Event]
    memories: dict[str, Memory]
    #: Cameras (schema 1.2, ``/videos``); empty in files without video
    videos: dict[str, VideoStream] = field(default_factory=dict)

    @property
    def session_id(self) -> str:
        return str(self.attrs.get("session_id", ""))

    @property
    def participant_id(self) -> str:
        return str(self.attrs.get("participant_id", ""))

    @property
    def clean_close(self) -> bool:
        return bool(self.attrs.get("clean_close", False))

    @property
    def eeg(self) -> Stream:
        if "eeg" not in self.streams:
            raise SessionFileError(f"{self.path} has no EEG stream (/streams/eeg)")
        return self.streams["eeg"]

    def events_where(self, *, source: str | None = None, label: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if (source is None or e.source == source) and (label is None or e.label == label)
        ]

    def to_raw(self, stream: str = "eeg") -> mne.io.BaseRaw:
        """The stream as an ``mne.io.RawArray`` in volts, with events as annotations."""
        return stream_to_raw(self, stream)


def _attr_str(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


#: What h5py raises when the bytes of a file are not what HDF5 expects (a file cut short by a
#: full disk, flipped bytes): errors of the file, not of recall-lab.
HDF5_READ_ERRORS = (OSError, RuntimeError)


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by h5py) says the file's bytes are damaged.

    h5py raises ``KeyError`` both for a member that is not there ("doesn't exist", "can't
    locate attribute") and for one whose index cannot be read ("bad local heap signature");
    only the second is damage.
    """
    if isinstance(exc, HDF5_READ_ERRORS):
        return True
    text = str(exc).lower()
    return isinstance(exc, KeyError) and any(w in text for w in _DAMAGE_WORDS)


_DAMAGE_WORDS = ("signature", "bad ", "wrong", "corrupt", "past end", "ran off", "checksum")


def damaged_file_error(path: str | Path, exc: BaseException) -> SessionFileError:
    """The one-line error for a file HDF5 cannot read: ``<file>: damaged file (<detail>)``."""
    # KeyError's str() adds quotes; OSError's args may start with an errno.
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    detail = text.splitlines()[0] if text else type(exc).__name__
    return SessionFileError(
        f"{path}: damaged file ({detail}); recover what is left from a backup or the "
        "recording machine's copy"
    )


def _file_of(obj: Any) -> str:
    try:
        return str(obj.file.filename)
    except Exception:  # the object itself cannot be read
        return "session file"


def group_members(group: Any) -> list[tuple[str, Any]]:
    """``(name, member)`` pairs of an HDF5 group (or ``{}``), read eagerly.

    h5py's ``items()`` iterator holds h5py's global lock between steps. If our code raised
    while such an iterator was suspended, the iterator (kept alive by the traceback) would keep
    the lock, and every other thread that touches HDF5 (the recorder) would freeze. So groups
    are listed completely before anything is done with their members.

    Raises
    ------
    SessionFileError
        ``<file>: damaged file (...)`` when HDF5 cannot read the group's index.
    """
    try:
        names = list(group.keys())
        return [(name, group[name]) for name in names]
    except (*HDF5_READ_ERRORS, KeyError) as exc:
        if not is_damage(exc):
            raise
        raise damaged_file_error(_file_of(group), exc) from None


def attrs_dict(obj: Any) -> dict[str, Any]:
    """An HDF5 object's attributes as plain Python values (read eagerly, see above)."""
    try:
        return {k: _attr_str(v) for k, v in list(obj.attrs.items())}
    except HDF5_READ_ERRORS as exc:
        raise damaged_file_error(_file_of(obj), exc) from None


def open_session_file(path: str | Path, mode: str = "r") -> h5py.File:
    """Open ``path`` as a recall-lab session, or raise a one-line :class:`SessionFileError`."""
    p = Path(path)
    if not p.exists():
        raise SessionFileError(f"{p}: no such file")
    if p.is_dir():
        raise SessionFileError(f"{p} is a folder, not a session file")
    if p.stat().st_size == 0:
        raise SessionFileError(f"{p} is empty (0 bytes): not a session file")
    try:
        is_hdf5 = h5py.is_hdf5(p)
    except OSError as exc:
        raise SessionFileError(f"{p} cannot be read: {exc}") from None
    if not is_hdf5:
        raise SessionFileError(
            f"{p} is not an HDF5 file; recall-lab sessions are .h5 files (to bring in EDF, BDF, "
            "FIF, BrainVision, EEGLAB or XDF use 'recall-lab import')"
        )
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg:
            raise SessionFileError(
                f"{p}: damaged file (truncated: cut short while copying or writing, e.g. when "
                "the disk filled); it cannot be opened"
            ) from None
        if "lock" in msg:
            raise SessionFileError(
                f"{p} is open in another program (a recording in progress?): try again after it "
                "closes"
            ) from None
        if "ermission denied" in msg:
            raise SessionFileError(f"{p} cannot be read: permission denied") from None
        raise damaged_file_error(p, exc) from None
    try:
        fmt = _attr_str(f.attrs.get("format"))
        version = str(_attr_str(f.attrs.get("schema_version", "")))
    except HDF5_READ_ERRORS as exc:
        f.close()
        raise damaged_file_error(p, exc) from None
    if fmt != FORMAT:
        f.close()
        raise SessionFileError(
            f"{p} is an HDF5 file but not a recall-lab session (format attribute is {fmt!r}); "
            "use 'recall-lab import' for recordings from other tools"
        )
    if not _version_supported(version):
        f.close()
        raise SessionFileError(
            f"{p} uses session schema {version or '(none)'} but this recall-lab reads schema "
            f"{SCHEMA_VERSION}: upgrade recall-lab to read it"
        )
    return f


def _version_supported(version: str) -> bool:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return False
    return major <= int(SCHEMA_VERSION.split(".")[0])


def _read_stream(g: h5py.Group, name: str, load_data: bool) -> Stream:
    a = g.attrs
    info = StreamInfo(
        name=name,
        channel_names=json.loads(_attr_str(a["channel_names"])),
        channel_types=json.loads(_attr_str(a["channel_types"])),
        units=json.loads(_attr_str(a["units"])),
        nominal_rate=float(a["nominal_rate"]),
        stream_type=str(_attr_str(a.get("stream_type", ""))),
        source=str(_attr_str(a.get("source", ""))),
        description=json.loads(_attr_str(a.get("description", "{}"))),
    )
    ts_ds, data_ds = g["timestamps"], g["data"]
    # After a crash the two datasets may differ by the rows of one unflushed append, and rows
    # HDF5 allocated but never filled read as the NaN fill value: keep only complete samples.
    n = min(ts_ds.shape[0], data_ds.shape[0])
    ts = ts_ds[:n]
    n = _written_rows(ts)
    ts = ts[:n]
    data = data_ds[:n] if load_data else np.empty((0, info.n_channels), np.float32)
    return Stream(info, data, ts, json.loads(_attr_str(a.get("clock_mapping", "{}"))))


def _written_rows(ts: np.ndarray) -> int:
    """Rows up to the last finite timestamp (trailing NaN rows were never written)."""
    n = len(ts)
    if n == 0 or np.isfinite(ts[-1]):
        return n
    finite = np.flatnonzero(np.isfinite(ts))
    return int(finite[-1]) + 1 if finite.size else 0


def _read_video(path: Path, g: h5py.Group, name: str) -> VideoStream:
    a = g.attrs
    ts_ds, fr_ds = g["timestamps"], g["frames"]
    # As for streams: after a crash keep the frames that have a timestamp (frames are written
    # first), up to the last finite one.
    n = min(ts_ds.shape[0], fr_ds.shape[0])
    ts = ts_ds[:n]
    ts = ts[: _written_rows(ts)]
    return VideoStream(
        path=path,
        name=name,
        timestamps=ts,
        width=int(a["width"]),
        height=int(a["height"]),
        nominal_rate=float(a.get("nominal_rate", 0.0)),
        codec=str(_attr_str(a.get("codec", "jpeg"))),
        source=str(_attr_str(a.get("source", ""))),
        clock_mapping=json.loads(_attr_str(a.get("clock_mapping", "{}"))),
        description=json.loads(_attr_str(a.get("description", "{}"))),
    )


def _read_events(f: h5py.File) -> list[Event]:
    if "events" not in f:
        return []
    arr = f["events"][()]
    events = [
        Event(
            float(r["timestamp"]),
            _attr_str(r["source"]),
            _attr_str(r["label"]),
            _attr_str(r["value"]),
            float(r["duration"]),
        )
        for r in arr
    ]
    events.sort(key=lambda e: e.timestamp)  # stable: equal timestamps keep write order
    return events


def _read_memory(g: h5py.Group) -> Memory:
    m = Memory(g.name.rsplit("/", 1)[-1], attrs_dict(g))
    if "description" in g:
        m.description = _attr_str(g["description"][()])
        m.description_timestamp = float(g["description"].attrs.get("timestamp", np.nan))
        m.description_submitted = bool(g["description"].attrs.get("submitted", True))
    if "sketch" in g:
        sk = g["sketch"]
        if "strokes" in sk:
            m.sketch_strokes = sk["strokes"][()]
        if "image_png" in sk:
            m.sketch_png = sk["image_png"][()].tobytes()
            m.sketch_submitted = bool(sk["image_png"].attrs.get("submitted", True))
    if "melody" in g and "audio" in g["melody"]:
        mel = g["melody"]
        m.melody = mel["audio"][()]
        m.melody_rate = int(mel.attrs["sample_rate"])
        m.melody_attrs = attrs_dict(mel)
    return m


def read_session(path: str | Path, *, load_data: bool = True) -> Session:
    """Read a session file.

    Parameters
    ----------
    path
        The ``.h5`` session file.
    load_data
        If False, leave every stream's ``data`` empty (its timestamps are still read), for
        quick summaries of long recordings.

    Returns
    -------
    Session
        Streams hold complete samples only: after a crash, rows past the last flush (or the
        last complete append) are dropped. A file whose ``clean_close`` is false also emits an
        :class:`UnclosedSessionWarning`.

    Raises
    ------
    SessionFileError
        With a one-line message for a missing, foreign, non-HDF5, truncated, newer-schema or
        malformed file.
    """
    p = Path(path)
    with open_session_file(p) as f:
        try:
            attrs = attrs_dict(f)
            streams = {
                name: _read_stream(g, name, load_data)
                for name, g in group_members(f.get("streams", {}))
            }
            events = _read_events(f)
            memories = {name: _read_memory(g) for name, g in group_members(f.get("memories", {}))}
            videos = {
                name: _read_video(p, g, name) for name, g in group_members(f.get("videos", {}))
            }
        except HDF5_READ_ERRORS as exc:
            raise damaged_file_error(p, exc) from None
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            if is_damage(exc):
                raise damaged_file_error(p, exc) from None
            # A member the spec requires is missing or malformed: say where to look, not how
            # h5py failed.
            raise SessionFileError(
                f"{p} does not follow the session spec ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); run "
                f"'recall-lab validate {p}' to list the problems"
            ) from None
    if not attrs.get("clean_close", False):
        warnings.warn(
            f"{p} was not closed properly (crash or still recording); data up to the last "
            "flush is available",
            UnclosedSessionWarning,
            stacklevel=2,
        )
    return Session(p, attrs, streams, events, memories, videos)


class UnclosedSessionWarning(UserWarning):
    """The file's ``clean_close`` is false."""


def annotation_description(event: Event) -> str:
    """How an event is named as an MNE annotation: ``label`` or ``label/value``."""
    return event.label if not event.value else f"{event.label}/{event.value}"


def stream_to_raw(session: Session, stream: str = "eeg") -> mne.io.BaseRaw:
    """Build an ``mne.io.RawArray`` (volts) with the session's events as annotations.

    Event onsets are placed at the sample whose timestamp is nearest the event's, so they stay
    exact when the device clock drifts from its nominal rate.
    """
    import mne

    if stream not in session.streams:
        raise SessionFileError(f"{session.path} has no stream {stream!r}")
    s = session.streams[stream]
    if s.n_samples == 0:
        raise SessionFileError(f"{session.path}: stream {stream!r} holds no samples")
    sfreq = s.info.nominal_rate or s.effective_rate
    if sfreq <= 0:
        raise SessionFileError(f"{session.path}: stream {stream!r} has no sampling rate")
    scale = np.array(
        [
            UNIT_SCALE_TO_VOLTS.get(u, 1.0) if t in {"eeg", "eog", "ecg", "emg"} else 1.0
            for u, t in zip(s.info.units, s.info.channel_types)
        ]
    )
    types = [t if t in MNE_CHANNEL_TYPES else "misc" for t in s.info.channel_types]
    names = _unique(s.info.channel_names)
    info = mne.create_info(names, sfreq, types, verbose=False)
    data = s.data.T.astype(np.float64) * scale[:, None]
    raw = mne.io.RawArray(data, info, verbose=False)
    started = session.attrs.get("started_at")
    if started:
        from datetime import datetime

        try:
            raw.set_meas_date(datetime.fromisoformat(str(started).replace("Z", "+00:00")))
        except ValueError:
            pass
    events = [e for e in session.events if s.timestamps[0] <= e.timestamp <= s.timestamps[-1]]
    if events:
        ts = np.array([e.timestamp for e in events])
        idx = np.clip(np.searchsorted(s.timestamps, ts), 0, s.n_samples - 1)
        prev = np.clip(idx - 1, 0, s.n_samples - 1)
        nearer_prev = np.abs(s.timestamps[prev] - ts) < np.abs(s.timestamps[idx] - ts)
        idx = np.where(nearer_prev, prev, idx)
        raw.set_annotations(
            mne.Annotations(
                onset=idx / sfreq,
                # An event lasting past the end of the recording is cut at the last sample,
                # which is all the data can say about it (and MNE would warn otherwise).
                duration=np.minimum([e.duration for e in events], (s.n_samples - 1 - idx) / sfreq),
                description=[annotation_description(e) for e in events],
                orig_time=raw.info["meas_date"],
            )
        )
    return raw


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}-{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out
