"""Load recordings made by other tools into the same :class:`~data_schema.reader.Session` shape.

One entry point, :func:`load_recording`, reads a recall-lab session (``.h5``) or a foreign
recording and returns a :class:`Session` whose streams hold the samples exactly as the file
stores them (no resampling, no filtering; units say what is stored) and whose events are the
file's markers and annotations. Import, replay and export all go through it.

Formats and what "exact" means for each:

- **XDF** (``.xdf``, ``.xdfz``), through ``pyxdf.load_xdf`` with its defaults (clock offsets
  applied, timestamps de-jittered, as LabRecorder users expect). Every numeric stream is kept;
  the EEG one (type ``EEG``, else the first numeric regular-rate stream) becomes ``eeg``.
  String streams and streams of type ``Markers`` become events (source ``lsl:<stream>``).
  Timestamps stay on the recording machine's LSL clock.
- **EDF, BDF, BrainVision, FIF, EEGLAB** through MNE's readers: samples in volts (the physical
  values the format's scaling gives), annotations become events (source ``import``).
  Timestamps are seconds from the first sample (``clock_mapping`` says so).
- **OpenBCI GUI v6 text** (``%``-header CSV): the EXG columns as written (microvolts, DC offset
  included) and the accelerometer as a second stream; the ``Timestamp`` column (UNIX
  milliseconds) becomes UNIX seconds; non-zero ``Marker Channel`` values become events.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import SessionFileError
from data_schema.reader import Session, Stream
from data_schema.types import UNITS_FROM_LSL, Event, StreamInfo

#: File endings each loader handles (lower case).
MNE_SUFFIXES = {
    ".edf": "EDF",
    ".bdf": "BDF",
    ".vhdr": "BrainVision",
    ".fif": "FIF",
    ".fif.gz": "FIF",
    ".set": "EEGLAB",
}
XDF_SUFFIXES = {".xdf", ".xdfz"}
SESSION_SUFFIXES = {".h5", ".hdf5"}
TEXT_SUFFIXES = {".txt", ".csv"}

SUPPORTED = "recall-lab .h5, XDF, EDF, BDF, BrainVision .vhdr, FIF, EEGLAB .set, OpenBCI GUI .txt"

_VOLTAGE_TYPES = {"eeg", "eog", "ecg", "emg"}
_MNE_TYPES = _VOLTAGE_TYPES | {"misc", "stim", "resp", "bio", "seeg", "ecog", "gsr", "temperature"}


def recording_format(path: str | Path) -> str:
    """The format name of ``path`` from its ending, or raise a one-line error."""
    name = Path(path).name.lower()
    if any(name.endswith(s) for s in SESSION_SUFFIXES):
        return "recall-lab"
    if any(name.endswith(s) for s in XDF_SUFFIXES):
        return "XDF"
    for suffix, fmt in MNE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if any(name.endswith(s) for s in TEXT_SUFFIXES):
        return "OpenBCI"
    raise SessionFileError(
        f"{Path(path).name}: unknown recording format; recall-lab reads {SUPPORTED}"
    )


def load_recording(path: str | Path) -> Session:
    """Read a session file or a foreign recording (format chosen by the file ending).

    Parameters
    ----------
    path
        The file. BrainVision recordings are named by their ``.vhdr`` header.

    Returns
    -------
    Session
        Streams (the EEG as ``eeg`` when there is one), events sorted by time, and attributes
        ``imported_from`` and ``import_format`` (for foreign files).

    Raises
    ------
    SessionFileError
        The file is missing, of an unknown format, empty, or cannot be parsed.
    """
    p = Path(path)
    fmt = recording_format(p)
    if not p.exists():
        raise SessionFileError(f"{p}: no such file")
    if p.is_dir():
        raise SessionFileError(f"{p} is a folder, not a recording")
    if fmt == "recall-lab":
        from data_schema.reader import read_session

        return read_session(p)
    if p.stat().st_size == 0:
        raise SessionFileError(f"{p} is empty (0 bytes): nothing to read")
    try:
        if fmt == "XDF":
            session = _load_xdf(p)
        elif fmt == "OpenBCI":
            session = _load_openbci(p)
        else:
            session = _load_mne(p, fmt)
    except SessionFileError:
        raise
    except Exception as exc:  # parsers raise anything from ValueError to struct.error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SessionFileError(
            f"{p.name} could not be read as {fmt} ({first}); is the file complete and of that "
            "format?"
        ) from None
    session.events.sort(key=lambda e: e.timestamp)
    return session


def _session(path: Path, fmt: str, streams: dict[str, Stream], events: list[Event]) -> Session:
    attrs: dict[str, Any] = {
        "imported_from": path.name,
        "import_format": fmt,
        "clean_close": True,
    }
    return Session(path, attrs, streams, events, {})


def _stream_name(base: str, taken: set[str]) -> str:
    """A stream name the session file accepts, unique within ``taken``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-._") or "stream"
    if not name[0].isalnum():
        name = f"s{name}"
    name = name[:60]
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}-{i}", i + 1
    taken.add(candidate)
    return candidate


# ----------------------------------------------------------------------------- XDF
def _first(d: Any, key: str, default: Any = None) -> Any:
    """pyxdf stores every XML element as a list; take the first value."""
    if not isinstance(d, dict):
        return default
    v = d.get(key)
    if isinstance(v, list):
        return v[0] if v else default
    return v if v is not None else default


def _xdf_channels(info: dict, n: int, stream_type: str) -> tuple[list[str], list[str], list[str]]:
    """Channel labels, MNE types and units from an XDF stream's ``desc`` (LSL meta-data)."""
    desc = _first(info, "desc")
    chans = []
    container = _first(desc, "channels")
    if isinstance(container, dict):
        chans = container.get("channel") or []
    is_eeg = stream_type.lower() == "eeg"
    names, types, units = [], [], []
    for i in range(n):
        ch = chans[i] if i < len(chans) and isinstance(chans[i], dict) else {}
        names.append(str(_first(ch, "label", "") or f"Ch{i + 1}"))
        kind = str(_first(ch, "type", "") or ("eeg" if is_eeg else "misc")).lower()
        types.append(kind if kind in _MNE_TYPES else "misc")
        unit = str(_first(ch, "unit", "") or "")
        if not unit:
            # The LSL meta-data convention puts EEG in microvolts when nothing else is said.
            unit = "uV" if types[-1] in _VOLTAGE_TYPES else "a.u."
        units.append(UNITS_FROM_LSL.get(unit.lower(), unit))
    return names, types, units


def _load_xdf(path: Path) -> Session:
    import logging

    import pyxdf

    # pyxdf logs clock-segment notes at WARNING for ordinary files; they are not the user's
    # problem, so keep them out of the command line's output.
    xdf_log = logging.getLogger("pyxdf.pyxdf")
    level = xdf_log.level
    xdf_log.setLevel(logging.ERROR)
    try:
        streams, _header = pyxdf.load_xdf(str(path))
    finally:
        xdf_log.setLevel(level)
    markers: list[dict] = []
    numeric: list[dict] = []
    for s in streams:
        info = s["info"]
        fmt = str(_first(info, "channel_format", "float32"))
        stype = str(_first(info, "type", ""))
        if fmt == "string" or stype.lower() == "markers":
            markers.append(s)
        else:
            numeric.append(s)
    if not numeric and not markers:
        raise SessionFileError(f"{path.name} holds no streams")

    def rate(s: dict) -> float:
        return float(_first(s["info"], "nominal_srate", 0) or 0)

    eeg = next((s for s in numeric if str(_first(s["info"], "type", "")).lower() == "eeg"), None)
    if eeg is None:
        eeg = next((s for s in numeric if rate(s) > 0), None)
    ordered = ([eeg] if eeg is not None else []) + [s for s in numeric if s is not eeg]
    taken: set[str] = set()
    out: dict[str, Stream] = {}
    for s in ordered:
        info = s["info"]
        lsl_name = str(_first(info, "name", "stream"))
        stype = str(_first(info, "type", ""))
        n = int(_first(info, "channel_count", 0) or 0)
        data = np.asarray(s["time_series"], dtype=np.float32).reshape(-1, n)
        ts = np.asarray(s["time_stamps"], dtype=np.float64)
        names, types, units = _xdf_channels(info, n, stype)
        key = (
            "eeg" if s is eeg else _stream_name(f"{lsl_name}-{stype}" if stype else lsl_name, taken)
        )
        taken.add(key)
        desc = _first(info, "desc")
        stream_info = StreamInfo(
            name=key,
            channel_names=names,
            channel_types=types,
            units=units,
            nominal_rate=rate(s),
            stream_type=stype or "EEG",
            source=f"import:{path.name}",
            description={
                "lsl_name": lsl_name,
                "lsl_type": stype,
                "lsl_source_id": str(_first(info, "source_id", "")),
                "lsl_hostname": str(_first(info, "hostname", "")),
                "channel_format": str(_first(info, "channel_format", "")),
                "manufacturer": str(_first(desc, "manufacturer", "") or ""),
                "xdf_stream_id": int(_first(info, "stream_id", 0) or 0),
                "pyxdf": "load_xdf defaults (synchronize_clocks, dejitter_timestamps)",
            },
        )
        out[key] = Stream(stream_info, data, ts, {"clock": "lsl", "origin": "xdf"})
    events: list[Event] = []
    for s in markers:
        name = str(_first(s["info"], "name", "markers"))
        for value, t in zip(s["time_series"], s["time_stamps"]):
            events.append(Event(float(t), f"lsl:{name}", "marker", _marker_text(value)))
    return _session(path, "XDF", out, events)


def _marker_text(sample: Any) -> str:
    """One marker sample as text: its single value, or a JSON list for multi-channel markers."""
    values = list(sample) if isinstance(sample, list | tuple | np.ndarray) else [sample]
    texts = []
    for v in values:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        texts.append(str(v))
    return texts[0] if len(texts) == 1 else json.dumps(texts)


# ----------------------------------------------------------------------------- MNE formats
def _load_mne(path: Path, fmt: str) -> Session:
    import mne

    with warnings.catch_warnings():
        # Readers warn about things they fix up themselves (unknown channel types in
        # BrainVision, annotation limits in EDF); the data are what the file holds.
        warnings.simplefilter("ignore")
        raw = mne.io.read_raw(str(path), preload=True, verbose="error")
    data = raw.get_data().T.astype(np.float32)
    if data.shape[0] == 0:
        raise SessionFileError(f"{path.name} holds no samples")
    sfreq = float(raw.info["sfreq"])
    types = raw.get_channel_types()
    units = ["V" if t in _VOLTAGE_TYPES else "a.u." for t in types]
    types = [t if t in _MNE_TYPES else "misc" for t in types]
    ts = np.arange(data.shape[0], dtype=np.float64) / sfreq
    meas = raw.info["meas_date"]
    info = StreamInfo(
        name="eeg",
        channel_names=list(raw.ch_names),
        channel_types=types,
        units=units,
        nominal_rate=sfreq,
        stream_type="EEG",
        source=f"import:{path.name}",
        description={"reader": f"mne.io.read_raw ({fmt})", "mne_version": mne.__version__},
    )
    clock = {
        "clock": "file",
        "meaning": "seconds from the first sample of the file",
        "first_sample_utc": None,
    }
    if meas is not None:
        from datetime import timedelta

        clock["first_sample_utc"] = (meas + timedelta(seconds=raw.first_time)).isoformat()
    ann = raw.annotations
    # Annotation onsets count from meas_date when orig_time is set, else from the first sample.
    shift = raw.first_time if ann.orig_time is not None else 0.0
    events = [
        Event(float(onset - shift), "import", str(desc), "", float(dur))
        for onset, dur, desc in zip(ann.onset, ann.duration, ann.description)
    ]
    return _session(path, fmt, {"eeg": Stream(info, data, ts, clock)}, events)


# ----------------------------------------------------------------------------- OpenBCI text
def read_openbci_text(path: str | Path) -> tuple[dict[str, str], list[str], np.ndarray]:
    """Parse an OpenBCI GUI v6 text file: header fields, column names, numeric table.

    The last column (``Timestamp (Formatted)``) is text and is left out of the table.
    """
    p = Path(path)
    header: dict[str, str] = {}
    columns: list[str] = []
    with open(p, encoding="utf-8", errors="replace") as f:
        n_skip = 0
        for line in f:
            n_skip += 1
            if line.startswith("%"):
                key, _, value = line[1:].partition("=")
                header[key.strip()] = value.strip()
                continue
            columns = [c.strip() for c in line.split(",")]
            break
    if "Timestamp" not in columns or not any(c.startswith("EXG Channel") for c in columns):
        raise SessionFileError(
            f"{p.name} is not an OpenBCI GUI v6 text file (no 'EXG Channel' and 'Timestamp' "
            "columns after the % header)"
        )
    numeric_cols = [i for i, c in enumerate(columns) if c != "Timestamp (Formatted)"]
    table = np.loadtxt(p, delimiter=",", skiprows=n_skip, usecols=numeric_cols, ndmin=2)
    return header, [columns[i] for i in numeric_cols], table


def _load_openbci(path: Path) -> Session:
    header, columns, table = read_openbci_text(path)
    if table.shape[0] == 0:
        raise SessionFileError(f"{path.name} holds no samples")
    rate_text = header.get("Sample Rate", "").split()
    rate = float(rate_text[0]) if rate_text else 0.0
    col = {c: i for i, c in enumerate(columns)}
    ts = table[:, col["Timestamp"]] / 1000.0  # UNIX milliseconds -> seconds
    exg = [c for c in columns if c.startswith("EXG Channel")]
    accel = [c for c in columns if c.startswith("Accel Channel")]
    board = header.get("Board", "")
    desc = {"format": "OpenBCI GUI v6 text", "board": board, "header": header}
    clock = {"clock": "unix", "meaning": "UNIX seconds (OpenBCI Timestamp column / 1000)"}
    streams = {
        "eeg": Stream(
            StreamInfo(
                "eeg",
                exg,
                ["eeg"] * len(exg),
                ["uV"] * len(exg),  # the GUI writes BrainFlow's microvolts, DC offset included
                rate,
                "EEG",
                f"import:{path.name}",
                desc,
            ),
            table[:, [col[c] for c in exg]].astype(np.float32),
            ts,
            clock,
        )
    }
    if accel:
        streams["accel"] = Stream(
            StreamInfo(
                "accel",
                accel,
                ["misc"] * len(accel),
                ["g"] * len(accel),
                rate,
                "Accelerometer",
                f"import:{path.name}",
                desc,
            ),
            table[:, [col[c] for c in accel]].astype(np.float32),
            ts.copy(),
            clock,
        )
    events = []
    if "Marker Channel" in col:
        marks = table[:, col["Marker Channel"]]
        for i in np.flatnonzero(marks):
            events.append(Event(float(ts[i]), "openbci", "marker", f"{marks[i]:g}"))
    return _session(path, "OpenBCI", streams, events)
