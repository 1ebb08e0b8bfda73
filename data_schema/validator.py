"""Check a session file against ``SPEC.md`` and explain every problem found.

``validate_session(path)`` returns a list of :class:`Problem` (empty when the file follows the
spec). Errors are departures from the spec that readers or later stages will trip over;
warnings are things a user should know (a recording that did not close properly, a device
whose timestamps disagree with its nominal rate) but that the file can still be used with.

The checks read the file in blocks and never hold more than one block of a stream in memory,
so hour-long recordings validate in seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_schema import SCHEMA_VERSION
from data_schema.errors import SessionFileError
from data_schema.reader import (
    HDF5_READ_ERRORS,
    MNE_CHANNEL_TYPES,
    _attr_str,
    damaged_file_error,
    group_members,
    is_damage,
    open_session_file,
)
from data_schema.summary import measured_rate, spacing_outside_gaps
from data_schema.types import UNIT_SCALE_TO_VOLTS
from data_schema.writer import NAME_RE, PSEUDONYM_RE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BLOCK_ROWS = 1 << 20  # timestamps read per block: 8 MB
RUN_RE = re.compile(r"^run-\d{3,}$")
STAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
VALENCES = {"positive", "negative", "neutral"}

ROOT_STR_ATTRS = (
    "format",
    "schema_version",
    "session_id",
    "participant_id",
    "protocol",
    "started_at",
    "software_version",
    "software_versions",
    "clock",
    "notes",
)


@dataclass(frozen=True)
class Problem:
    """One departure from the spec.

    Attributes
    ----------
    severity
        ``"error"`` (the file breaks the spec) or ``"warning"`` (usable, but know this).
    where
        HDF5 path of the member concerned (``/`` for the root attributes).
    what
        What is wrong.
    meaning
        What it means for the data and, where there is one, what to do.
    """

    severity: str
    where: str
    what: str
    meaning: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.what} ({self.meaning})"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, where: str, what: str, meaning: str) -> None:
        self.problems.append(Problem("error", where, what, meaning))

    def warning(self, where: str, what: str, meaning: str) -> None:
        self.problems.append(Problem("warning", where, what, meaning))


def validate_session(path: str | Path) -> list[Problem]:
    """Check ``path`` against the session spec.

    Parameters
    ----------
    path
        A session file (``.h5``).

    Returns
    -------
    list of Problem
        Errors first, then warnings, each in file order. Empty when the file follows the spec.

    Raises
    ------
    SessionFileError
        When the file cannot be checked at all: missing, not HDF5, truncated, not a recall-lab
        session, or of a newer schema major version.
    """
    c = _Checker()
    with open_session_file(path) as f:
        try:
            clean = _check_root(f, c)
            _check_events(f, c)
            streams = list(_members(f, "streams", c, required=True))
            for name, obj in streams:
                _check_stream(name, obj, clean, c)
            if "streams" in f and "eeg" not in dict(streams):
                _missing_eeg(f, c)
            if "videos" in f:
                for name, obj in _members(f, "videos", c, required=False):
                    _check_video(name, obj, clean, c)
            for name, obj in _members(f, "memories", c, required=False):
                _check_memory(name, obj, c)
            for name, obj in _members(f, "derived", c, required=False):
                _check_stage(name, obj, c)
        except HDF5_READ_ERRORS as exc:
            raise damaged_file_error(path, exc) from None
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            if is_damage(exc):
                raise damaged_file_error(path, exc) from None
            # Damage the checks did not foresee (HDF5 objects that cannot be read at all).
            found = "; ".join(str(p) for p in c.problems if p.severity == "error")
            raise SessionFileError(
                f"{path} is damaged beyond checking ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
                + (f"; found before that: {found}" if found else "")
            ) from None
    return sorted(c.problems, key=lambda p: p.severity != "error")


def refuse_invalid_session(path: str | Path, action: str) -> None:
    """Raise a one-line :class:`SessionFileError` if ``path`` breaks the session spec.

    Checked before any work, so a file ``recall-lab validate`` rejects is never processed, and
    nothing is written into it.
    """
    errors = [p for p in validate_session(path) if p.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SessionFileError(
            f"{path}: cannot {action} a file that does not follow the session spec: "
            f"{errors[0].where}: {errors[0].what}{more}; 'recall-lab validate {path}' lists "
            "the problems"
        )


# ---------------------------------------------------------------------------- helpers
def _members(f: h5py.File, group: str, c: _Checker, *, required: bool) -> Iterator[tuple[str, Any]]:
    if group not in f:
        if required:
            c.error(
                f"/{group}", "missing", "every session file has this group; the file is damaged"
            )
        else:
            c.warning(
                f"/{group}", "missing", "the writer always creates it; nothing is stored here"
            )
        return
    g = f[group]
    if not isinstance(g, h5py.Group):
        c.error(f"/{group}", "is a dataset, not a group", "readers cannot find its members")
        return
    yield from group_members(g)


def _json(
    obj: Any, attr: str, c: _Checker, where: str, kind: type | tuple[type, ...]
) -> Any | None:
    """The JSON attribute ``attr`` of ``obj`` parsed, or None after reporting why not."""
    if attr not in obj.attrs:
        c.error(where, f"attribute {attr!r} is missing", "required by the spec")
        return None
    raw = _attr_str(obj.attrs[attr])
    if not isinstance(raw, str):
        c.error(where, f"attribute {attr!r} is {type(raw).__name__}, not a JSON string", _JSON_MEAN)
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        c.error(where, f"attribute {attr!r} is not valid JSON ({exc})", _JSON_MEAN)
        return None
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        c.error(
            where,
            f"attribute {attr!r} holds a JSON {type(value).__name__}, not a {names}",
            _JSON_MEAN,
        )
        return None
    return value


_JSON_MEAN = "structured attributes are JSON strings; readers cannot parse this one"


def _iso(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_str(v: Any) -> bool:
    return isinstance(_attr_str(v), str)


def _is_number(v: Any) -> bool:
    v = _attr_str(v)
    return isinstance(v, int | float) and not isinstance(v, bool)


# ---------------------------------------------------------------------------- root
def _check_root(f: h5py.File, c: _Checker) -> bool:
    a = f.attrs
    for key in ROOT_STR_ATTRS:
        if key not in a:
            c.error("/", f"attribute {key!r} is missing", "required by the spec")
        elif not _is_str(a[key]):
            c.error("/", f"attribute {key!r} is not a string", "required to be a UTF-8 string")
    version = str(_attr_str(a.get("schema_version", "")))
    if not re.fullmatch(r"\d+\.\d+", version):
        c.error(
            "/",
            f"schema_version {version!r} is not MAJOR.MINOR",
            "readers cannot tell what it holds",
        )
    elif tuple(map(int, version.split("."))) > tuple(map(int, SCHEMA_VERSION.split("."))):
        c.warning(
            "/",
            f"schema {version} is newer than this validator's {SCHEMA_VERSION}",
            "members added since are not checked; upgrade recall-lab for a full check",
        )
    pid = _attr_str(a.get("participant_id", ""))
    if isinstance(pid, str) and not PSEUDONYM_RE.fullmatch(pid):
        c.error(
            "/",
            f"participant_id {pid!r} is not a pseudonym code",
            "use letters, digits and -_. only (e.g. P001); a name must never be stored",
        )
    for key in ("started_at", "ended_at"):
        if key in a and _iso(_attr_str(a[key])) is None:
            c.error(
                "/",
                f"{key} {_attr_str(a[key])!r} is not an ISO 8601 time",
                "wall-clock times are ISO 8601 UTC",
            )
    start, end = _iso(_attr_str(a.get("started_at", ""))), _iso(_attr_str(a.get("ended_at", "")))
    if start and end and start.tzinfo and end.tzinfo and end < start:
        c.error(
            "/",
            "ended_at is before started_at",
            "the recording machine's clock jumped or the file was edited",
        )
    if "software_versions" in a:
        _json(f, "software_versions", c, "/", dict)
    clock = _attr_str(a.get("clock", "lsl"))
    if clock != "lsl":
        c.error(
            "/",
            f"clock is {clock!r}, not 'lsl'",
            "timestamps must be on the LSL clock to line up with events",
        )
    clean = a.get("clean_close")
    if clean is None:
        c.error("/", "attribute 'clean_close' is missing", "required by the spec")
        return False
    if not isinstance(clean, bool | np.bool_):
        c.error(
            "/", f"clean_close is {type(clean).__name__}, not a boolean", "required to be a bool"
        )
    clean = bool(clean)
    if not clean:
        reason = _attr_str(a.get("stop_reason", ""))
        if reason:
            c.warning(
                "/",
                f"clean_close is false: recording stopped early ({reason})",
                "everything written before the stop is kept; nothing after it was recorded",
            )
        else:
            c.warning(
                "/",
                "clean_close is false: the file was not closed properly (crash, power loss, "
                "killed process, or still recording)",
                "the data end at the writer's last flush: a crash loses at most about half a "
                "second",
            )
    elif "ended_at" not in a:
        c.error(
            "/",
            "clean_close is true but ended_at is missing",
            "a proper close always sets ended_at",
        )
    return clean


# ---------------------------------------------------------------------------- events
def _check_events(f: h5py.File, c: _Checker) -> None:
    if "events" not in f:
        c.error(
            "/events", "missing", "every session file has an events dataset (empty if no events)"
        )
        return
    ds = f["events"]
    if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None:
        c.error("/events", "is not a compound dataset", "readers cannot read the events")
        return
    want = {"timestamp": "f", "source": "O", "label": "O", "value": "O", "duration": "f"}
    bad = False
    for field_name, kind in want.items():
        if field_name not in ds.dtype.names:
            c.error(
                "/events",
                f"field {field_name!r} is missing",
                "every event has timestamp, source, label, value, duration",
            )
            bad = True
        elif kind == "f" and ds.dtype[field_name].kind != "f":
            c.error(
                "/events",
                f"field {field_name!r} is {ds.dtype[field_name]}, not float64",
                "times are float64 seconds",
            )
            bad = True
        elif kind == "O" and h5py.check_string_dtype(ds.dtype[field_name]) is None:
            c.error(
                "/events",
                f"field {field_name!r} is {ds.dtype[field_name]}, not a string",
                "labels and values are UTF-8 strings",
            )
            bad = True
    if ds.ndim != 1:
        c.error("/events", f"has {ds.ndim} dimensions, not 1", "one row per event")
        bad = True
    if bad or ds.shape[0] == 0:
        return
    arr = ds[()]
    ts, dur = arr["timestamp"], arr["duration"]
    if not np.all(np.isfinite(ts)):
        c.error(
            "/events",
            f"{int(np.sum(~np.isfinite(ts)))} events have a non-finite timestamp",
            "they cannot be placed in time",
        )
    if not np.all(np.isfinite(dur) & (dur >= 0)):
        c.error(
            "/events", "some durations are negative or not finite", "durations are seconds >= 0"
        )
    counts: dict[str, int] = {}
    for row in arr:
        src, label, value = (_attr_str(row[k]) for k in ("source", "label", "value"))
        problem = _event_value_problem(src, label, value)
        if problem:
            key = f"{src}/{label}: {problem}"
            counts[key] = counts.get(key, 0) + 1
    for key, n in counts.items():
        c.error(
            "/events",
            f"{n} event(s) {key}",
            "analyses that read these events will skip or misread them",
        )


def _event_value_problem(source: str, label: str, value: str) -> str:
    if source == "keyboard" and label in ("key_down", "key_up"):
        v = _loads(value)
        if not isinstance(v, dict) or "key" not in v:
            return 'value is not JSON {"key": ..., "valence": ..., "phase": ...}'
        if v.get("valence") not in VALENCES and v.get("valence") is not None:
            return f"valence {v.get('valence')!r} is not positive, negative or neutral"
    elif source == "protocol" and label in ("phase_start", "phase_end"):
        v = _loads(value)
        if not isinstance(v, dict) or "phase" not in v:
            return 'value is not JSON {"phase": ..., "kind": ..., "memory": ...}'
    elif source == "participant" and label in ("sam_valence", "sam_arousal"):
        try:
            ok = 1 <= float(value) <= 9
        except ValueError:
            ok = False
        if not ok:
            return f"value {value!r} is not a SAM rating 1-9"
    return ""


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- streams
def _check_stream(name: str, g: Any, clean: bool, c: _Checker) -> None:
    where = f"/streams/{name}"
    if not NAME_RE.fullmatch(name):
        c.error(
            where,
            f"stream name {name!r} has characters outside [A-Za-z0-9_.-]",
            "tools that map names to files may fail",
        )
    if not isinstance(g, h5py.Group):
        c.error(where, "is not a group", "a stream is a group with data and timestamps")
        return
    data, ts = g.get("data"), g.get("timestamps")
    if not isinstance(data, h5py.Dataset) or not isinstance(ts, h5py.Dataset):
        c.error(where, "data or timestamps is missing", "the stream cannot be read")
        return
    n_ch = None
    if data.ndim != 2:
        c.error(
            f"{where}/data", f"has {data.ndim} dimensions, not 2", "data are [samples x channels]"
        )
    else:
        n_ch = data.shape[1]
        if data.dtype != np.float32:
            if data.dtype.kind == "f":
                c.warning(
                    f"{where}/data",
                    f"is {data.dtype}, not float32",
                    "readable, but twice the size the spec asks for",
                )
            else:
                c.error(
                    f"{where}/data",
                    f"is {data.dtype}, not float32",
                    "samples are stored as float32",
                )
    if ts.ndim != 1:
        c.error(
            f"{where}/timestamps", f"has {ts.ndim} dimensions, not 1", "one timestamp per sample"
        )
        return
    if ts.dtype != np.float64:
        c.error(
            f"{where}/timestamps",
            f"is {ts.dtype}, not float64",
            "float32 cannot hold LSL times to the sample",
        )
    if data.ndim == 2 and data.shape[0] != ts.shape[0]:
        msg = f"data has {data.shape[0]} rows but timestamps has {ts.shape[0]}"
        if clean:
            c.error(where, msg, "a properly closed file has one timestamp per sample")
        else:
            c.warning(
                where,
                msg,
                "the last append before the crash was cut; readers use the shorter length",
            )
    for attr in ("channel_names", "channel_types", "units"):
        values = _json(g, attr, c, where, list)
        if values is None:
            continue
        if not all(isinstance(v, str) for v in values):
            c.error(where, f"{attr} holds non-strings", "one string per channel")
        elif n_ch is not None and len(values) != n_ch:
            c.error(
                where,
                f"{attr} has {len(values)} entries for {n_ch} channels",
                "one entry per channel",
            )
        elif attr == "channel_types":
            unknown = sorted(set(values) - MNE_CHANNEL_TYPES)
            if unknown:
                c.warning(
                    where,
                    f"channel types {unknown} are not MNE types",
                    "MNE will treat these channels as 'misc'",
                )
    types = _loads(str(_attr_str(g.attrs.get("channel_types", "[]")))) or []
    units = _loads(str(_attr_str(g.attrs.get("units", "[]")))) or []
    volt_types = {"eeg", "eog", "ecg", "emg"}
    odd = sorted(
        {u for t, u in zip(types, units) if t in volt_types and u not in UNIT_SCALE_TO_VOLTS}
    )
    if odd and isinstance(odd[0], str):
        c.warning(
            where,
            f"voltage channels in units {odd}",
            f"to_raw() converts only {sorted(UNIT_SCALE_TO_VOLTS)} to volts",
        )
    rate = g.attrs.get("nominal_rate")
    if rate is None:
        c.error(
            where,
            "attribute 'nominal_rate' is missing",
            "required by the spec (0 for irregular streams)",
        )
        rate = 0.0
    elif not _is_number(rate) or not np.isfinite(float(rate)) or float(rate) < 0:
        c.error(
            where,
            f"nominal_rate {_attr_str(rate)!r} is not a number >= 0",
            "the sampling rate is unknown",
        )
        rate = 0.0
    for attr in ("stream_type", "source"):
        if attr not in g.attrs:
            c.error(where, f"attribute {attr!r} is missing", "required by the spec")
        elif not _is_str(g.attrs[attr]):
            c.error(where, f"attribute {attr!r} is not a string", "required to be a string")
    _json(g, "description", c, where, dict)
    _json(g, "clock_mapping", c, where, dict)
    _check_timestamps(where, ts, float(rate), clean, c)
    if data.ndim == 2 and data.dtype.kind == "f":
        _check_data_finite(where, data, ts, c)


def _missing_eeg(f: h5py.File, c: _Checker) -> None:
    if _attr_str(f.attrs.get("imported_from", "")):
        c.warning(
            "/streams/eeg",
            "missing",
            "the imported recording has no EEG stream; commands that need EEG will refuse it",
        )
        return
    c.error(
        "/streams/eeg",
        "missing",
        "every recording has an EEG stream; a recording stopped or killed in its first "
        "second, before the amplifier's first samples, holds none: no EEG was recorded",
    )


def _check_data_finite(where: str, data: h5py.Dataset, ts: h5py.Dataset, c: _Checker) -> None:
    """Samples that are NaN or infinite, counted over the rows that have a timestamp."""
    n = min(data.shape[0], ts.shape[0])
    n_ch = data.shape[1]
    if n == 0 or n_ch == 0:
        return
    rows = max(1, BLOCK_ROWS // n_ch)
    bad = np.zeros(n_ch, np.int64)
    written = 0
    first = -1
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        keep = np.isfinite(ts[start:stop])
        block = data[start:stop][keep]
        written += block.shape[0]
        nonfinite = ~np.isfinite(block)
        bad += nonfinite.sum(axis=0)
        if first < 0 and nonfinite.any():
            first = start + int(np.flatnonzero(keep)[np.argmax(nonfinite.any(axis=1))])
    if written == 0 or not bad.any():
        return
    dead = int((bad == written).sum())
    if dead == n_ch:
        c.error(
            f"{where}/data",
            f"all {written * n_ch} values are not finite (NaN or infinite)",
            "the stream holds no signal; export and decoding cannot use it",
        )
    elif dead:
        c.error(
            f"{where}/data",
            f"{dead} of {n_ch} channels hold no finite value (NaN or infinite)",
            "those channels hold no signal; drop them before export or decoding",
        )
    else:
        c.warning(
            f"{where}/data",
            f"{int(bad.sum())} values are not finite (NaN or infinite; first at row {first})",
            "filters spread them; export and decoding may refuse the stream",
        )


def _check_timestamps(where: str, ts: h5py.Dataset, rate: float, clean: bool, c: _Checker) -> None:
    n = ts.shape[0]
    if n == 0:
        c.warning(where, "holds no samples", "nothing was recorded for this stream")
        return
    n_bad = n_back = 0
    first_bad = -1
    prev = -np.inf
    dts: list[np.ndarray] = []
    for start in range(0, n, BLOCK_ROWS):
        block = ts[start : start + BLOCK_ROWS]
        finite = np.isfinite(block)
        if not finite.all():
            n_bad += int((~finite).sum())
            if first_bad < 0:
                first_bad = start + int(np.argmin(finite))
        good = block[finite]
        if good.size:
            d = np.diff(np.concatenate([[prev], good]))
            n_back += int((d < 0).sum())
            dts.append(d[1:] if not np.isfinite(prev) else d)
            prev = good[-1]
    if n_bad:
        trailing = first_bad >= 0 and not np.isfinite(ts[first_bad:]).any()
        if trailing and not clean:
            c.warning(
                f"{where}/timestamps",
                f"the last {n_bad} rows were never written (NaN)",
                "space allocated just before the crash; readers drop these rows",
            )
        else:
            c.error(
                f"{where}/timestamps",
                f"{n_bad} timestamps are not finite (first at row {first_bad})",
                "these samples cannot be placed in time",
            )
    if n_back:
        c.error(
            f"{where}/timestamps",
            f"timestamps go backwards {n_back} time(s)",
            "timestamps must be non-decreasing; events cannot be placed reliably in this stream",
        )
    if rate > 0 and dts:
        # Mean spacing with gaps left out: robust to devices that deliver in bursts (OpenBCI's
        # per-packet timestamps), where a median of the spacings would mislead.
        n, total = spacing_outside_gaps(np.concatenate(dts), rate)  # as `info` measures it
        if n >= 10 and total > 0:
            measured = measured_rate(n, total)
            if abs(measured - rate) > 0.05 * rate:
                c.warning(
                    f"{where}/timestamps",
                    f"samples arrive at {measured:.4g} Hz but nominal_rate says {rate:.4g} Hz",
                    "MNE objects are built at nominal_rate; check the device's sampling settings",
                )


# ---------------------------------------------------------------------------- videos
JPEG_SOI = b"\xff\xd8"


def _check_video(name: str, g: Any, clean: bool, c: _Checker) -> None:
    where = f"/videos/{name}"
    if not NAME_RE.fullmatch(name):
        c.error(
            where,
            f"video name {name!r} has characters outside [A-Za-z0-9_.-]",
            "tools that map names to files may fail",
        )
    if not isinstance(g, h5py.Group):
        c.error(where, "is not a group", "a video is a group with frames and timestamps")
        return
    frames, ts = g.get("frames"), g.get("timestamps")
    if not isinstance(frames, h5py.Dataset) or not isinstance(ts, h5py.Dataset):
        c.error(where, "frames or timestamps is missing", "the video cannot be read")
        return
    base = h5py.check_vlen_dtype(frames.dtype)
    if frames.ndim != 1 or base is None or np.dtype(base) != np.uint8:
        c.error(
            f"{where}/frames",
            f"is {frames.dtype} {frames.shape}, not 1-D variable-length uint8",
            "each row is one encoded frame",
        )
        return
    if ts.ndim != 1 or ts.dtype != np.float64:
        c.error(
            f"{where}/timestamps",
            f"is {ts.dtype} {ts.shape}, not 1-D float64",
            "one LSL time per frame",
        )
        return
    if frames.shape[0] != ts.shape[0]:
        msg = f"frames has {frames.shape[0]} rows but timestamps has {ts.shape[0]}"
        if clean:
            c.error(where, msg, "a properly closed file has one timestamp per frame")
        else:
            c.warning(
                where,
                msg,
                "the last append before the crash was cut; readers use the shorter length",
            )
    for attr in ("kind", "codec", "source"):
        if not _is_str(g.attrs.get(attr)):
            c.error(where, f"attribute {attr!r} is missing or not a string", "required by the spec")
    if _attr_str(g.attrs.get("kind")) not in (None, "video"):
        c.error(
            where,
            f"kind is {_attr_str(g.attrs.get('kind'))!r}, not 'video'",
            "readers may not know how to read it",
        )
    if _attr_str(g.attrs.get("codec")) not in (None, "jpeg"):
        c.warning(
            where, f"codec {_attr_str(g.attrs.get('codec'))!r}", "the reader decodes only jpeg"
        )
    for attr in ("width", "height"):
        v = g.attrs.get(attr)
        if not _is_int(v) or int(v) <= 0:
            c.error(
                where,
                f"attribute {attr!r} is {_attr_str(v)!r}, not a positive integer",
                "the frame size is unknown",
            )
    rate = g.attrs.get("nominal_rate")
    if not _is_number(rate) or not np.isfinite(float(rate)) or float(rate) < 0:
        c.error(
            where,
            f"nominal_rate {_attr_str(rate)!r} is not a number >= 0",
            "required by the spec (0 when unknown)",
        )
        rate = 0.0
    _json(g, "description", c, where, dict)
    _json(g, "clock_mapping", c, where, dict)
    _check_timestamps(where, ts, float(rate), clean, c)
    n = min(frames.shape[0], ts.shape[0])
    for i in sorted({0, n - 1}) if n else []:
        row = frames[i]
        if len(row) == 0 and not clean and i == n - 1:
            continue  # allocated just before a crash
        if bytes(row[:2].tobytes()) != JPEG_SOI:
            c.error(f"{where}/frames", f"frame {i} is not a JPEG image", "it cannot be decoded")


# ---------------------------------------------------------------------------- memories
def _check_memory(name: str, g: Any, c: _Checker) -> None:
    where = f"/memories/{name}"
    if not NAME_RE.fullmatch(name):
        c.error(
            where,
            f"memory id {name!r} has characters outside [A-Za-z0-9_.-]",
            "ids are used in file names on export",
        )
    if not isinstance(g, h5py.Group):
        c.error(where, "is not a group", "a memory is a group")
        return
    for attr, check, kind in (
        ("cue", _is_str, "a string"),
        ("index", _is_int, "an integer"),
        ("started", _is_number, "a number"),
    ):
        if attr in g.attrs and not check(g.attrs[attr]):
            c.error(where, f"attribute {attr!r} is not {kind}", "required by the spec")
    if "description" in g:
        d = g["description"]
        if (
            not isinstance(d, h5py.Dataset)
            or d.shape != ()
            or h5py.check_string_dtype(d.dtype) is None
        ):
            c.error(
                f"{where}/description",
                "is not a scalar string",
                "the description is one UTF-8 string",
            )
        elif "timestamp" not in d.attrs:
            c.warning(
                f"{where}/description",
                "has no 'timestamp' attribute",
                "when it was submitted is unknown",
            )
    sk = g.get("sketch")
    if sk is not None:
        _check_sketch(f"{where}/sketch", sk, c)
    mel = g.get("melody")
    if mel is not None:
        _check_melody(f"{where}/melody", mel, c)


def _is_int(v: Any) -> bool:
    v = _attr_str(v)
    return isinstance(v, int) and not isinstance(v, bool)


def _check_sketch(where: str, sk: Any, c: _Checker) -> None:
    if not isinstance(sk, h5py.Group):
        c.error(where, "is not a group", "the sketch is a group with strokes and image_png")
        return
    st = sk.get("strokes")
    if st is not None:
        fields = {"stroke": "i", "timestamp": "f", "x": "f", "y": "f", "pressure": "f"}
        names = st.dtype.names or ()
        missing = [k for k in fields if k not in names]
        wrong = [k for k in fields if k in names and st.dtype[k].kind != fields[k]]
        if missing or wrong or st.ndim != 1:
            c.error(
                f"{where}/strokes",
                f"dtype {st.dtype} is not the stroke dtype (missing {missing}, wrong {wrong})",
                "sketch replays cannot read it",
            )
        elif st.shape[0]:
            pts = st[()]
            if (pts["stroke"] < -2).any():
                c.error(
                    f"{where}/strokes",
                    "stroke ids below -2",
                    "-1 marks clear and -2 undo; other negatives mean nothing",
                )
            p = pts["pressure"]
            if not np.all((p >= 0) & (p <= 1)):
                c.warning(
                    f"{where}/strokes", "pressure outside 0-1", "pressure is normalised to 0-1"
                )
    img = sk.get("image_png")
    if img is not None:
        if not isinstance(img, h5py.Dataset) or img.dtype != np.uint8 or img.ndim != 1:
            c.error(
                f"{where}/image_png", "is not a 1-D uint8 array", "the sketch image is PNG bytes"
            )
        elif img[: len(PNG_MAGIC)].tobytes() != PNG_MAGIC:
            c.error(
                f"{where}/image_png",
                "does not start with the PNG signature",
                "the image cannot be opened",
            )
        for attr in ("width", "height"):
            v = img.attrs.get(attr)
            if v is None or not _is_int(v) or int(v) <= 0:
                c.warning(
                    f"{where}/image_png",
                    f"attribute {attr!r} is missing or not a positive integer",
                    "the canvas size is unknown",
                )


def _check_melody(where: str, mel: Any, c: _Checker) -> None:
    if not isinstance(mel, h5py.Group):
        c.error(where, "is not a group", "the melody is a group with audio")
        return
    audio = mel.get("audio")
    if audio is None:
        c.warning(where, "has no audio", "no melody was recorded")
        return
    if not isinstance(audio, h5py.Dataset) or audio.ndim != 2 or audio.dtype != np.float32:
        c.error(
            f"{where}/audio", "is not float32 [samples x channels]", "the melody cannot be played"
        )
    sr = mel.attrs.get("sample_rate")
    if sr is None or not _is_int(sr) or int(sr) <= 0:
        c.error(
            where,
            f"sample_rate {_attr_str(sr)!r} is not a positive integer",
            "the melody cannot be played at the right speed",
        )
    origin = str(_attr_str(mel.attrs.get("origin", "")))
    if origin != "microphone" and not origin.startswith("file:"):
        c.warning(
            where,
            f"origin {origin!r} is neither 'microphone' nor 'file:<name>'",
            "where the melody came from is unknown",
        )
    if isinstance(audio, h5py.Dataset) and audio.size and audio.dtype.kind == "f":
        peak = float(np.nanmax(np.abs(audio[()])))
        if peak > 1.0 + 1e-6:
            c.warning(
                f"{where}/audio", f"peak {peak:.3g} outside -1..1", "it will clip when played"
            )


# ---------------------------------------------------------------------------- derived
def _check_stage(stage: str, g: Any, c: _Checker) -> None:
    where = f"/derived/{stage}"
    if not STAGE_RE.fullmatch(stage):
        c.error(
            where,
            f"stage name {stage!r} is not lowercase letters, digits and '_'",
            "tools look stages up by these names",
        )
    if not isinstance(g, h5py.Group):
        c.error(where, "is not a group", "a stage is a group of runs")
        return
    for run, r in group_members(g):
        rw = f"{where}/{run}"
        if not RUN_RE.fullmatch(run):
            c.error(
                rw, f"run name {run!r} is not run-NNN", "the latest run cannot be found reliably"
            )
        if not isinstance(r, h5py.Group):
            c.error(rw, "is not a group", "a run is a group")
            continue
        if "created_at" not in r.attrs or _iso(_attr_str(r.attrs["created_at"])) is None:
            c.error(
                rw, "created_at is missing or not ISO 8601", "when the result was made is unknown"
            )
        _json(r, "software_versions", c, rw, dict)
        _json(r, "config", c, rw, dict)
