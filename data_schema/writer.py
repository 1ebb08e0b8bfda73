"""Write a session file as data arrives.

The file is a plain HDF5 file (no SWMR): every append grows resizable datasets, and the writer
flushes (and ``fsync``s) at least every ``flush_interval`` seconds, so a crash, SIGKILL or power
loss loses at most about that much and the file still opens. See ``SPEC.md`` for the layout.

A full disk is the other way a recording ends badly. HDF5 updates its superblock in place but
appends new chunks and metadata at the end of the file; if one of those appends fails, the
superblock already promises bytes that never arrived and the file no longer opens ("truncated
file"). So the writer keeps disk space *reserved* ahead of HDF5's end of allocation
(``posix_fallocate``): HDF5 only ever writes into blocks the file already owns, a failure to
reserve more is clean (nothing half written), and the reserve still left is enough to flush and
close. On close the unused reserve is given back.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5s

from data_schema import FORMAT, SCHEMA_VERSION
from data_schema.errors import (
    DiskFullError,
    RecallLabError,
    SessionExistsError,
    SessionFileError,
)
from data_schema.types import Event, StreamInfo, VideoInfo
from data_schema.versions import software_version, software_versions

PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: HDF5's chunk cache per open dataset: room for two 256 KiB sample chunks, so the partly
#: filled last chunk of a stream stays in memory between appends (HDF5's default is 1 MiB).
CHUNK_CACHE_BYTES = 512 * 1024

STR = h5py.string_dtype("utf-8")
EVENT_DTYPE = np.dtype(
    [("timestamp", "<f8"), ("source", STR), ("label", STR), ("value", STR), ("duration", "<f8")]
)
#: One JPEG frame per row: variable-length bytes (HDF5 keeps them in its global heap; the
#: dataset's chunks hold only a reference per frame).
FRAME_DTYPE = h5py.vlen_dtype(np.uint8)
#: Frames per chunk of a video's ``frames`` (16-byte references: 4 KiB) and ``timestamps``.
FRAME_CHUNK = 256
STROKE_DTYPE = np.dtype(
    [("stroke", "<i4"), ("timestamp", "<f8"), ("x", "<f4"), ("y", "<f4"), ("pressure", "<f4")]
)


def check_pseudonym(participant_id: str) -> str:
    """Return ``participant_id`` if it is a usable pseudonym, else raise ``ValueError``.

    A pseudonym is letters, digits, ``-_.``, at most 64 characters, starting with a letter or
    digit; spaces (as in "Jane Doe") are refused so a full name cannot slip in by habit.
    """
    if not PSEUDONYM_RE.fullmatch(participant_id or ""):
        raise ValueError(
            f"participant id {participant_id!r} is not a pseudonym code: use letters, digits, "
            "'-', '_' or '.', at most 64 characters (e.g. P001); never a name"
        )
    return participant_id


def check_new_session_path(path: str | Path) -> Path:
    """Return ``path`` if a new session file can be created there, else raise.

    Checked before a device is opened, so a typo in ``--out`` never costs a connection.
    """
    p = Path(path)
    if p.is_dir():
        empty = " (an empty --out names the current folder)" if str(p) == "." else ""
        raise SessionFileError(
            f"{p} is a folder{empty}: give the new session file's name, e.g. --out "
            f"{p / 'session.h5'}"
        )
    if p.exists():
        raise SessionExistsError(
            f"{p} already exists; recall-lab never overwrites a file: choose another output name"
        )
    if not p.parent.is_dir():
        raise SessionFileError(
            f"folder {p.parent} does not exist: create it or choose another output"
        )
    return p


def check_session_name(path: str | Path) -> Path:
    """Return ``path`` if it names a session file (``.h5``), else raise a one-line error."""
    p = Path(path)
    if p.suffix.lower() not in (".h5", ".hdf5"):
        raise SessionFileError(
            f"{p}: session files are HDF5 files ending in .h5: name it {p.with_suffix('.h5')} "
            "(use 'recall-lab export' for other formats)"
        )
    return p


def check_writable_folder(folder: str | Path) -> Path:
    """Return ``folder`` if files can be created in it (or it can be made), else raise.

    The nearest folder that exists is probed by creating and removing a file, which also
    catches read-only mounts and full quotas that permission bits do not show.
    """
    f = Path(folder)
    probe_in = f
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise RecallLabError(f"{probe_in} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".recall-lab-probe-", dir=probe_in)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise RecallLabError(f"folder {probe_in} is not writable ({exc.strerror or exc})") from None
    return f


def _create_failure(writer: SessionWriter, exc: BaseException) -> str:
    """Why a new file could not be created, in words (not HDF5's error stack)."""
    text = str(exc)
    m = re.search(r"errno = (\d+)", text)
    code = int(m.group(1)) if m else getattr(exc, "errno", None)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder {writer.path.parent} is read-only ({os.strerror(code)})"
    if code is not None and code in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {writer.path.parent} is full"
    if code is not None:
        return os.strerror(code)
    return text.splitlines()[0] if text else type(exc).__name__


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _append_rows(ds: h5d.DatasetID, n0: int, rows: np.ndarray) -> None:
    """Grow ``ds`` (rows along its first axis) from ``n0`` rows and write ``rows`` there.

    h5py's low-level calls: the high-level ``resize`` and slice assignment cost more Python
    per call than the write itself at two appends a second.
    """
    shape = (n0 + len(rows), *rows.shape[1:])
    ds.set_extent(shape)
    file_space = ds.get_space()
    file_space.select_hyperslab((n0,) + (0,) * (rows.ndim - 1), rows.shape)
    ds.write(h5s.create_simple(rows.shape), file_space, rows)


def _sync(fd: int) -> None:
    """Put a file's data on the disk: ``fdatasync`` where there is one (the data and the size,
    without the access times ``fsync`` would write too), else ``fsync``."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


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
    durable
        ``fsync`` after each flush so a power cut, not only a crash, loses at most
        ``flush_interval`` (False only for throw-away files on slow network disks).
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
        durable: bool = True,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        try:
            check_pseudonym(participant_id)
        except ValueError as exc:
            raise SessionFileError(str(exc)) from None
        #: The pseudonym (also a root attribute): the protocol seeds clip orders with it.
        self.participant_id = participant_id
        check_new_session_path(self.path)
        self.flush_interval = float(flush_interval)
        self.durable = bool(durable)
        self._lock = threading.RLock()
        self._closed = False
        self._failure: RecallLabError | None = None
        # Bytes one new chunk of every growing dataset takes: the most HDF5 can append at once.
        self._chunk_bytes = 256 * EVENT_DTYPE.itemsize
        self._reserved_to = 0
        # Sample bytes appended since the last flush: they may still sit in HDF5's chunk cache
        # with no file space allocated yet, so the reserve must cover them too.
        self._unflushed = 0
        # Each stream's (data, timestamps) dataset ids, kept open so their chunk caches hold
        # the partly filled last chunk between appends (no read-back and rewrite of it).
        self._ids: dict[str, tuple[h5d.DatasetID, h5d.DatasetID]] = {}
        # Each video's (frames, timestamps) datasets.
        self._videos: dict[str, tuple[h5py.Dataset, h5py.Dataset]] = {}
        self._preallocate = hasattr(os, "posix_fallocate")  # not on macOS or Windows
        try:
            self._f = h5py.File(self.path, "x", rdcc_nbytes=CHUNK_CACHE_BYTES)
        except (OSError, FileExistsError) as exc:
            raise SessionFileError(
                f"cannot create {self.path}: {_create_failure(self, exc)}"
            ) from None
        except BaseException:
            # Interrupted inside h5py while it created the file ("x": the file is ours).
            self.path.unlink(missing_ok=True)
            raise
        self._fd: int | None = None
        try:
            try:
                self._fd = os.open(self.path, os.O_RDWR)
            except OSError:
                self._fd = None
            self._start_file(session_id, participant_id, protocol, notes, attrs)
        except BaseException:
            # Stopped half-way (Ctrl-C, a signal, a full disk): the file holds no session yet
            # and might not even open; leave nothing behind.
            try:
                self._f.close()
            except Exception:
                pass
            self._release_fd()
            self.path.unlink(missing_ok=True)
            raise

    def _start_file(
        self,
        session_id: str | None,
        participant_id: str,
        protocol: str,
        notes: str,
        attrs: Mapping[str, Any] | None,
    ) -> None:
        """Write the root attributes and groups of a new file and flush them."""
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
        self._reserve(0)  # a full disk here removes the new file (see __init__)
        self.flush()

    # ------------------------------------------------------------------ basics
    @property
    def session_id(self) -> str:
        return str(self._f.attrs["session_id"])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def fileno(self) -> int:
        """The writer's own descriptor of the file (``ValueError`` once it is closed)."""
        if self._fd is None:
            raise ValueError(f"{self.path} has no open descriptor")
        return self._fd

    def _guard(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise SessionFileError(f"{self.path} is already closed")

    # ------------------------------------------------------------------ disk space
    _METADATA_MARGIN = 256 * 1024  # object headers, B-tree nodes, heaps written by a flush

    def _reserve(self, extra: int) -> None:
        """Make sure the file owns enough blocks past HDF5's end for ``extra`` bytes and a close.

        Raises :class:`DiskFullError` (and records it) when the disk cannot give more; at that
        point the remaining reserve still covers a flush and a clean close.
        """
        # Chunk caches hold at most CHUNK_CACHE_BYTES per open dataset; the rest was allocated.
        cached = min(self._unflushed, 2 * CHUNK_CACHE_BYTES * len(self._ids))
        need = self._chunk_bytes + self._METADATA_MARGIN + cached + int(extra)
        eoa = int(self._f.id.get_filesize())
        if self._reserved_to - eoa >= need:
            return
        # Reserve ahead, and only the blocks not reserved yet (cheaper than from 0 each time).
        target = eoa + 2 * need
        start = min(self._reserved_to, eoa)
        try:
            if self._fd is not None and self._preallocate:
                os.posix_fallocate(self._fd, start, target - start)
            elif shutil.disk_usage(self.path.parent).free < target - eoa:
                # No preallocation on this platform: at least stop before the disk is full.
                raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            if _is_disk_full(exc):
                self._failure = DiskFullError(
                    f"the disk holding {self.path} is full; recording stopped and everything "
                    "recorded until now is kept: free space and start a new file"
                )
                raise self._failure from None
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                self._preallocate = False  # this filesystem cannot; fall back to free space
                return
            raise
        self._reserved_to = target

    def _release_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _fail(self, exc: BaseException) -> None:
        """Turn a write error into a clean stop that keeps what was written."""
        if _is_disk_full(exc):
            self._failure = DiskFullError(
                f"the disk holding {self.path} is full; recording stopped, everything up to "
                "the last flush is kept: free space and start a new file"
            )
        else:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._failure = SessionFileError(
                f"writing {self.path} failed ({first}); recording stopped, everything up to the "
                "last flush is kept"
            )
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
        if not NAME_RE.fullmatch(name):
            raise SessionFileError(f"stream name {name!r}: use letters, digits, '-', '_', '.'")
        with self._lock:
            self._guard()
            if name in self._f["streams"]:
                raise SessionFileError(f"stream {name!r} already exists in {self.path}")
            g = self._f["streams"].create_group(name)
            n = info.n_channels
            rows = int(max(16, min(8192, 262_144 // (4 * max(n, 1)))))
            # NaN fill: rows HDF5 allocated but never received data read as NaN, not as a
            # plausible 0 uV at t = 0 s, so readers can tell and drop them.
            g.create_dataset(
                "data",
                shape=(0, n),
                maxshape=(None, n),
                dtype="<f4",
                chunks=(rows, max(n, 1)),
                fillvalue=np.nan,
            )
            g.create_dataset(
                "timestamps",
                shape=(0,),
                maxshape=(None,),
                dtype="<f8",
                chunks=(max(rows, 1024),),
                fillvalue=np.nan,
            )
            self._chunk_bytes += rows * max(n, 1) * 4 + max(rows, 1024) * 8
            g.attrs["channel_names"] = json.dumps(info.channel_names)
            g.attrs["channel_types"] = json.dumps(info.channel_types)
            g.attrs["units"] = json.dumps(info.units)
            g.attrs["nominal_rate"] = float(info.nominal_rate)
            g.attrs["stream_type"] = info.stream_type
            g.attrs["source"] = info.source
            g.attrs["description"] = json.dumps(info.description, default=str)
            g.attrs["clock_mapping"] = json.dumps(dict(clock or {"clock": "lsl"}), default=str)
            self._ids[name] = (g["data"].id, g["timestamps"].id)
            self._maybe_flush()

    def append(
        self, name: str, data: np.ndarray, timestamps: np.ndarray, *, flush: bool = True
    ) -> None:
        """Append samples ``data`` [n x channels] with their LSL ``timestamps`` [n].

        With ``flush=False`` the writer does not flush on its own even when one is due: the
        caller writes a batch (every stream, the events) and then calls :meth:`flush`.
        """
        data = np.asarray(data, dtype=np.float32)
        ts = np.asarray(timestamps, dtype=np.float64)
        if data.ndim != 2 or ts.ndim != 1 or len(ts) != data.shape[0]:
            raise ValueError(f"append {name!r}: data {data.shape} and timestamps {ts.shape}")
        if len(ts) == 0:
            return
        with self._lock:
            self._guard()
            self._reserve(data.nbytes + ts.nbytes)
            d, t = self._ids[name]
            try:
                n0 = t.shape[0]
                _append_rows(d, n0, np.ascontiguousarray(data))
                _append_rows(t, n0, np.ascontiguousarray(ts))
                self._unflushed += data.nbytes + ts.nbytes
                if flush:
                    self._maybe_flush()
            except (OSError, RuntimeError) as exc:
                self._fail(exc)

    def add_video_stream(
        self, name: str, info: VideoInfo, *, clock: Mapping[str, Any] | None = None
    ) -> None:
        """Create ``/videos/<name>`` for a camera described by ``info``.

        Frames are stored one per row as they come (:meth:`append_frames`), each as its own
        JPEG; ``clock`` says how their timestamps reached the LSL clock.
        """
        if not NAME_RE.fullmatch(name):
            raise SessionFileError(f"video name {name!r}: use letters, digits, '-', '_', '.'")
        with self._lock:
            self._guard()
            videos = self._f.require_group("videos")
            if name in videos:
                raise SessionFileError(f"video {name!r} already exists in {self.path}")
            g = videos.create_group(name)
            g.create_dataset(
                "frames", shape=(0,), maxshape=(None,), dtype=FRAME_DTYPE, chunks=(FRAME_CHUNK,)
            )
            g.create_dataset(
                "timestamps",
                shape=(0,),
                maxshape=(None,),
                dtype="<f8",
                chunks=(FRAME_CHUNK,),
                fillvalue=np.nan,
            )
            self._chunk_bytes += FRAME_CHUNK * (16 + 8)
            g.attrs["kind"] = "video"
            g.attrs["codec"] = info.codec
            g.attrs["width"] = int(info.width)
            g.attrs["height"] = int(info.height)
            g.attrs["nominal_rate"] = float(info.nominal_rate)
            g.attrs["source"] = info.source
            g.attrs["description"] = json.dumps(info.description, default=str)
            g.attrs["clock_mapping"] = json.dumps(dict(clock or {"clock": "lsl"}), default=str)
            self._videos[name] = (g["frames"], g["timestamps"])
            self._maybe_flush()

    def append_frames(
        self,
        name: str,
        frames: list[bytes],
        timestamps: np.ndarray,
        *,
        flush: bool = True,
    ) -> None:
        """Append encoded frames (one ``bytes`` each) with their LSL ``timestamps``.

        ``flush`` as in :meth:`append`. The frames land in the file before their timestamps,
        so after a crash a timestamp never points at a frame that is not there.
        """
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.ndim != 1 or len(ts) != len(frames):
            raise ValueError(f"append_frames {name!r}: {len(frames)} frames, {ts.shape} timestamps")
        if not len(ts):
            return
        rows = np.empty(len(frames), dtype=object)
        rows[:] = [np.frombuffer(f, dtype=np.uint8) for f in frames]
        nbytes = sum(len(f) for f in frames) + 24 * len(frames)
        with self._lock:
            self._guard()
            # Frame bytes go to HDF5's global heap at the end of the file, not to chunks.
            self._reserve(nbytes)
            fr, t = self._videos[name]
            try:
                n0 = t.shape[0]
                fr.resize((n0 + len(ts),))
                # One element at a time: h5py reads an object array whose frames happen to
                # have equal lengths (a single frame, identical frames) as a 2-D block.
                for i, row in enumerate(rows):
                    fr[n0 + i] = row
                t.resize((n0 + len(ts),))
                t[n0:] = ts
                self._unflushed += nbytes
                if flush:
                    self._maybe_flush()
            except (OSError, RuntimeError) as exc:
                self._fail(exc)

    def n_frames(self, name: str) -> int:
        with self._lock:
            return int(self._videos[name][1].shape[0])

    def n_samples(self, name: str) -> int:
        with self._lock:
            return int(self._ids[name][1].shape[0])

    # ------------------------------------------------------------------ events
    def add_events(self, events: Iterable[Event], *, flush: bool = True) -> None:
        """Append events (any order; the reader sorts by timestamp); ``flush`` as in
        :meth:`append`."""
        rows = [(e.timestamp, e.source, e.label, e.value, e.duration) for e in events]
        if not rows:
            return
        arr = np.array(rows, dtype=EVENT_DTYPE)
        with self._lock:
            self._guard()
            self._reserve(arr.nbytes + sum(len(r[1]) + len(r[2]) + len(r[3]) for r in rows))
            ds = self._f["events"]
            n0 = ds.shape[0]
            try:
                ds.resize(n0 + len(arr), axis=0)
                ds[n0:] = arr
                if flush:
                    self._maybe_flush()
            except (OSError, RuntimeError) as exc:
                self._fail(exc)

    def add_event(self, event: Event) -> None:
        self.add_events([event])

    # ------------------------------------------------------------------ memories
    def memory_group(self, memory_id: str, **attrs: Any) -> str:
        """Create (or update the attributes of) ``/memories/<memory_id>``; returns its path."""
        if not NAME_RE.fullmatch(memory_id):
            raise SessionFileError(f"memory id {memory_id!r}: use letters, digits, '-', '_', '.'")
        with self._lock:
            self._guard()
            mems = self._f["memories"]
            g = mems[memory_id] if memory_id in mems else mems.create_group(memory_id)
            for k, v in attrs.items():
                g.attrs[k] = v
            self._maybe_flush()
            return g.name

    def set_description(
        self, memory_id: str, text: str, timestamp: float, *, submitted: bool = True
    ) -> None:
        """Store the participant's written description (replacing an earlier version).

        ``submitted=False`` marks a draft: what was written when it was last saved while
        typing, or when the phase ended before Submit.
        """
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            self._reserve(len(text.encode("utf-8")))
            if "description" in g:
                del g["description"]
            ds = g.create_dataset("description", data=text, dtype=STR)
            ds.attrs["timestamp"] = float(timestamp)
            ds.attrs["submitted"] = bool(submitted)
            self._maybe_flush()

    def add_sketch_points(self, memory_id: str, points: np.ndarray) -> None:
        """Append sketch points (``STROKE_DTYPE`` rows) as they are drawn."""
        pts = np.asarray(points, dtype=STROKE_DTYPE)
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            sk = g.require_group("sketch")
            if "strokes" not in sk:
                self._chunk_bytes += 1024 * STROKE_DTYPE.itemsize
                sk.create_dataset(
                    "strokes", shape=(0,), maxshape=(None,), dtype=STROKE_DTYPE, chunks=(1024,)
                )
            self._reserve(pts.nbytes)
            ds = sk["strokes"]
            n0 = ds.shape[0]
            try:
                ds.resize(n0 + len(pts), axis=0)
                ds[n0:] = pts
                self._maybe_flush()
            except (OSError, RuntimeError) as exc:
                self._fail(exc)

    def set_sketch_image(
        self,
        memory_id: str,
        png: bytes,
        timestamp: float,
        *,
        width: int,
        height: int,
        submitted: bool = True,
    ) -> None:
        """Store the finished sketch as PNG bytes (replacing an earlier version).

        ``submitted=False``: the canvas as the participant left it when the phase ended.
        """
        with self._lock:
            g = self._f[self.memory_group(memory_id)]
            self._reserve(len(png))
            sk = g.require_group("sketch")
            if "image_png" in sk:
                del sk["image_png"]
            ds = sk.create_dataset("image_png", data=np.frombuffer(png, dtype=np.uint8))
            ds.attrs.update(
                timestamp=float(timestamp),
                width=int(width),
                height=int(height),
                submitted=bool(submitted),
            )
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
                self._chunk_bytes += 16384 * audio.shape[1] * 4
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
            self._reserve(audio.nbytes)
            n0 = ds.shape[0]
            try:
                ds.resize(n0 + len(audio), axis=0)
                ds[n0:] = audio
                self._maybe_flush()
            except (OSError, RuntimeError) as exc:
                self._fail(exc)

    # ------------------------------------------------------------------ flushing
    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush_due(self, fraction: float = 1.0) -> bool:
        """True when ``fraction`` of ``flush_interval`` has passed since the last flush."""
        return time.monotonic() - self._last_flush >= fraction * self.flush_interval

    def maybe_flush(self) -> None:
        """Flush if ``flush_interval`` has passed since the last flush."""
        with self._lock:
            if not self._closed and self._failure is None:
                self._maybe_flush()

    def flush(self) -> None:
        """Write everything HDF5 holds in memory and ask the OS to put it on the disk.

        HDF5's flush only reaches the OS page cache, which survives a killed process but not a
        power cut; the ``fsync`` makes the last flush durable (a few ms on a local disk).
        """
        with self._lock:
            if self._closed:
                return
            try:
                self._f.flush()
                if self.durable and self._fd is not None:
                    _sync(self._fd)
            except (OSError, RuntimeError) as exc:
                self._fail(exc)
            self._unflushed = 0
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Close properly: sets ``clean_close`` and ``ended_at``. Safe to call twice.

        After a disk-full stop the file keeps ``clean_close = False`` and gains ``stop_reason``
        (the reserve kept for this moment pays for it). The unused reserve is then given back.
        """
        with self._lock:
            if self._closed:
                return
            end = None
            try:
                self._f.attrs["ended_at"] = utc_now_iso()
                if self._failure is None:
                    self._f.attrs["clean_close"] = True
                else:
                    self._f.attrs["stop_reason"] = str(self._failure)
                self._f.flush()
                end = int(self._f.id.get_filesize())
            except (OSError, RuntimeError):
                pass  # write error: the file keeps clean_close = False, data up to last flush
            finally:
                self._ids.clear()  # h5py's close closes them with the file
                self._videos.clear()
                try:
                    self._f.close()
                except Exception:
                    end = None  # HDF5 wrote on close and failed: do not cut anything
                self._release_fd()
                self._closed = True
            if end is not None:
                try:
                    if self.path.stat().st_size > end:
                        os.truncate(self.path, end)
                except OSError:
                    pass  # the reserve stays in the file; harmless, HDF5 ignores it

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
