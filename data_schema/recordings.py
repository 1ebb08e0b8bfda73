"""Load recordings made by other tools into the same :class:`~data_schema.reader.Session` shape.

One entry point, :func:`load_recording`, reads a recall-lab session (``.h5``) or a foreign
recording and returns a :class:`Session` whose streams hold the samples exactly as the file
stores them (no resampling, no filtering; units say what is stored) and whose events are the
file's markers and annotations. Import, replay and export all go through it.

Formats and what "exact" means for each:

- **XDF** (``.xdf``, ``.xdfz``), through ``pyxdf.load_xdf`` with its defaults (clock offsets
  applied, timestamps de-jittered, as LabRecorder users expect). Every numeric stream is kept;
  the EEG one (type ``EEG`` with samples, else a regular-rate stream with samples, else an
  empty ``EEG`` stream; see :func:`_choose_xdf_eeg`) becomes ``eeg``.
  String streams and streams of type ``Markers`` become events (source ``lsl:<stream>``).
  Timestamps stay on the recording machine's LSL clock.
- **EDF, BDF, BrainVision, FIF, EEGLAB** through MNE's readers: samples in volts (the physical
  values the format's scaling gives), annotations become events (source ``import``).
  Timestamps are seconds from the first sample (``clock_mapping`` says so).
- **OpenBCI GUI v6 text** (``%``-header CSV): the EXG columns as written (microvolts, DC offset
  included) and the accelerometer as a second stream; the ``Timestamp`` column (UNIX
  milliseconds) becomes UNIX seconds; non-zero ``Marker Channel`` values become events.

Channels a reader calls ``eeg`` are typed from their names and units and 10-05 names get their
standard spelling (:func:`type_channels`); each stream's ``description`` records
``original_channel_names``, ``channel_typing``, ``filters`` and ``manufacturer``.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, datetime
from functools import lru_cache
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


# ----------------------------------------------------------------------------- channel typing
#: Units that mean the samples are a voltage (as written by the formats recall-lab reads).
_VOLT_UNITS = {"v", "mv", "uv", "µv", "μv", "nv", "microvolts", "millivolts", "volts", "nanovolts"}
#: Units with no physical meaning; they say nothing about the channel type.
_NO_UNITS = {"", "a.u.", "au", "n/a", "none", "unitless"}
_UNIT_TYPES = {"°c": "temperature", "c": "temperature", "degc": "temperature"} | {
    u: "gsr" for u in ("s", "us", "µs", "μs")
}
#: Prefixes of MNE's EDF ``infer_types`` convention ("EEG Fp1", "EOG left"), as MNE maps them.
_PREFIX_TYPES = {
    "EEG": "eeg",
    "EOG": "eog",
    "ECG": "ecg",
    "EKG": "ecg",
    "EMG": "emg",
    "SEEG": "seeg",
    "ECOG": "ecog",
    "RESP": "resp",
    "TEMP": "temperature",
    "MISC": "misc",
    "BIO": "bio",
    "SAO2": "bio",
    "STIM": "stim",
}
#: Words in a name that say what a channel is when it is not scalp EEG.
_NAME_RULES = (
    (re.compile(r"EOG|^[HV]EO|EYE"), "eog", "eye channel"),
    (re.compile(r"ECG|EKG"), "ecg", "heart channel"),
    (re.compile(r"EMG|CHIN|MASSET"), "emg", "muscle channel"),
    (
        re.compile(r"AUX|ERGO|ACC|GYRO|PPG|RESP|TRIG|STATUS|BATT|TEMP|GSR|EDA|PHOTO|SPO2|PULSE"),
        "misc",
        "auxiliary input",
    ),
)
#: Numbered names that carry no placement ("Ch3", "EXG Channel 0", BioSemi "B12", EGI "E7"):
#: the file's own type stands.
_GENERIC_NAME = re.compile(r"(?:EXG ?CHANNEL|CHANNEL|CHAN|CH|EEG|EXG|[A-H])?[ _-]*\d+")


@lru_cache(maxsize=1)
def _names_1005() -> dict[str, str]:
    """Upper-cased 10-05 names to their standard spelling (MNE's ``colin27_1005`` montage).

    The same names as ``standard_1005`` (deprecated under that name in MNE 1.13).
    """
    import mne

    builtin = set(mne.channels.get_builtin_montages())
    kind = "colin27_1005" if "colin27_1005" in builtin else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        montage = mne.channels.make_standard_montage(kind)
    return {n.upper(): n for n in montage.ch_names}


def _spelling_1005(name: str) -> str | None:
    """The 10-05 spelling of ``name`` (EEGMMIDB's "Fc5." -> "FC5"), or None if it is not one."""
    return _names_1005().get(name.strip().rstrip(".").strip().upper())


def type_channels(
    names: list[str], types: list[str], units: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """Channel types from names and units; 10-05 names in their standard spelling.

    Readers call every channel of a headset ``eeg``. A channel the file calls ``eeg`` becomes
    what its unit or name says: a non-voltage unit (``°C`` temperature, ``S`` skin
    conductance, anything else misc); an MNE ``infer_types`` prefix (``"EOG left"``); a word
    (EOG, ECG/EKG, EMG, AUX, Ergo, ACC...); a 10-05 position (eeg, renamed to the standard
    spelling: trailing dots stripped, case as in the montage); a bipolar pair of 10-05 names
    (eeg, kept); a numbered name with no placement (``Ch3``) keeps ``eeg``; any other name is
    ``misc``. A ``misc`` channel in ``°C``/``C`` or ``S`` becomes ``temperature``/``gsr``;
    channels the file types otherwise are left as they are.

    Returns
    -------
    names, types, notes
        ``notes`` has one line per channel that was renamed or retyped (``"Fc5. -> FC5 (10-05
        spelling)"``, ``"AUX_RIGHT: eeg -> misc (auxiliary input)"``).
    """
    out_names, out_types, notes = [], [], []
    for name, kind, unit in zip(names, types, units):
        new_name, new_kind, why = name, kind, ""
        if kind == "eeg":
            new_name, new_kind, why = _type_eeg_channel(name, unit)
        elif kind == "misc" and unit.strip().lower() in _UNIT_TYPES:
            new_kind, why = _UNIT_TYPES[unit.strip().lower()], f"unit {unit}"
        if new_kind != kind:
            notes.append(f"{name}: {kind} -> {new_kind} ({why})")
        out_names.append(new_name)
        out_types.append(new_kind)
    # A renamed channel must not collide with another channel's name: keep the original then.
    for i, (old, new) in enumerate(zip(names, out_names)):
        if new != old and out_names.count(new) + names.count(new) > 1:
            out_names[i] = old
    notes += [f"{o} -> {n} (10-05 spelling)" for o, n in zip(names, out_names) if o != n]
    return out_names, out_types, notes


def _type_eeg_channel(name: str, unit: str) -> tuple[str, str, str]:
    """(name, type, reason) for a channel its file calls ``eeg``."""
    u = unit.strip().lower()
    if u not in _VOLT_UNITS and u not in _NO_UNITS:
        return name, _UNIT_TYPES.get(u, "misc"), f"unit {unit} is not a voltage"
    upper = name.strip().upper()
    prefix, _, rest = upper.partition(" ")
    if rest and prefix in _PREFIX_TYPES:
        kind = _PREFIX_TYPES[prefix]
        if kind == "eeg":
            spelled = _spelling_1005(rest)
            return (spelled or name), "eeg", ""
        return name, kind, f"'{prefix}' prefix (MNE infer_types convention)"
    spelled = _spelling_1005(name)
    if spelled is not None:
        return spelled, "eeg", ""
    for pattern, kind, why in _NAME_RULES:
        if pattern.search(upper):
            return name, kind, f"{why}, by name"
    parts = [p for p in re.split(r"\s*-\s*", upper.rstrip(".")) if p]
    if len(parts) == 2 and all(_spelling_1005(p) or p in ("REF", "AVG", "AR") for p in parts):
        return name, "eeg", ""  # a bipolar derivation or a referenced label ("Fp1-F7")
    if _GENERIC_NAME.fullmatch(upper):
        return name, "eeg", ""
    return name, "misc", "not a 10-05 position"


def describe_typing(description: dict[str, Any]) -> str:
    """One line on what :func:`type_channels` did to a stream, or ``""`` if nothing."""
    notes = list(description.get("channel_typing") or [])
    renamed = [n for n in notes if n.endswith("(10-05 spelling)")]
    retyped = [n for n in notes if n not in renamed]
    parts = []
    if renamed:
        examples = ", ".join(n.split(" (")[0] for n in renamed[:3])
        more = ", ..." if len(renamed) > 3 else ""
        parts.append(f"{len(renamed)} channel name(s) standardised to 10-05 ({examples}{more})")
    if retyped:
        parts.append("; ".join(retyped))
    return "; ".join(parts)


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


#: Products whose LSL ``desc/manufacturer`` names the device rather than its maker.
_MAKERS = {"muse": "Interaxon", "muse 2": "Interaxon", "muse s": "Interaxon"}


def _xdf_manufacturer(desc: Any) -> str | None:
    """The device maker from the LSL meta-data (``desc/manufacturer``), or None."""
    text = str(_first(desc, "manufacturer", "") or "").strip()
    return _MAKERS.get(text.lower(), text) or None


def _hz(value: Any) -> float | None:
    """A cutoff in Hz from LSL meta-data text ("0.5", "250 Hz"); None for none/off/DC."""
    if isinstance(value, dict):
        for key in ("cutoff", "frequency", "value", "lower", "upper"):
            if key in value:
                return _hz(_first(value, key))
        return None
    match = re.match(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)", str(value or ""))
    hz = float(match.group(1)) if match else 0.0
    return hz if hz > 0 else None


def _xdf_filters(desc: Any) -> dict[str, float | None]:
    """Hardware filters the LSL meta-data states (``desc/filtering/{highpass,lowpass}``)."""
    filtering = _first(desc, "filtering")
    return {
        "highpass": _hz(_first(filtering, "highpass")),
        "lowpass": _hz(_first(filtering, "lowpass")),
    }


def _choose_xdf_eeg(numeric: list[dict]) -> dict | None:
    """The stream that becomes ``eeg``: a stream with samples before an empty one.

    Order of preference: type ``EEG`` with samples (the one with most samples, then most
    channels, then file order), any regular-rate stream with samples, an empty ``EEG`` stream,
    an empty regular-rate stream.
    """

    def is_eeg(s: dict) -> bool:
        return str(_first(s["info"], "type", "")).lower() == "eeg"

    def regular(s: dict) -> bool:
        return float(_first(s["info"], "nominal_srate", 0) or 0) > 0

    def samples(s: dict) -> int:
        return len(s.get("time_stamps", []))

    def channels(s: dict) -> int:
        return int(_first(s["info"], "channel_count", 0) or 0)

    for wanted in (
        lambda s: is_eeg(s) and samples(s) > 0,
        lambda s: regular(s) and samples(s) > 0,
        is_eeg,
        regular,
    ):
        found = [s for s in numeric if wanted(s)]
        if found:
            # max() keeps the first of equals, so file order breaks the last tie.
            return max(found, key=lambda s: (samples(s), channels(s)))
    return None


def _xdf_start(header: dict) -> datetime | None:
    """The recording's start (aware datetime) from an XDF file header, or ``None``."""
    value = _first(header.get("info", {}) if isinstance(header, dict) else {}, "datetime")
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            dt = datetime.strptime(str(value).strip(), fmt)
        except ValueError:
            continue
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    return None


def _load_xdf(path: Path) -> Session:
    import logging

    import pyxdf

    # pyxdf logs clock-segment notes at WARNING for ordinary files; they are not the user's
    # problem, so keep them out of the command line's output.
    xdf_log = logging.getLogger("pyxdf.pyxdf")
    level = xdf_log.level
    xdf_log.setLevel(logging.ERROR)
    try:
        streams, header = pyxdf.load_xdf(str(path))
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

    start_utc = _xdf_start(header)
    firsts = [float(x["time_stamps"][0]) for x in streams if len(x["time_stamps"])]
    t_ref = min(firsts) if firsts else 0.0
    eeg = _choose_xdf_eeg(numeric)
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
        original = list(names)
        names, types, typing = type_channels(names, types, units)
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
                "manufacturer": _xdf_manufacturer(desc),
                "lsl_manufacturer": str(_first(desc, "manufacturer", "") or ""),
                "filters": _xdf_filters(desc),
                "xdf_stream_id": int(_first(info, "stream_id", 0) or 0),
                "pyxdf": "load_xdf defaults (synchronize_clocks, dejitter_timestamps)",
                "original_channel_names": original,
                "channel_typing": typing,
            },
        )
        clock: dict[str, object] = {"clock": "lsl", "origin": "xdf"}
        if start_utc is not None and len(ts):
            from datetime import timedelta

            clock["first_sample_utc"] = (
                start_utc + timedelta(seconds=float(ts[0]) - t_ref)
            ).isoformat()
            clock["first_sample_utc_from"] = (
                "the XDF header's datetime (the recorder's start, whole seconds), taken as the "
                "time of the file's earliest sample"
            )
        out[key] = Stream(stream_info, data, ts, clock)
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
    types = [t if t in _MNE_TYPES else "misc" for t in raw.get_channel_types()]
    units = _mne_units(raw, fmt)
    original = list(raw.ch_names)
    names, types, typing = type_channels(original, types, units)
    ts = np.arange(data.shape[0], dtype=np.float64) / sfreq
    meas = raw.info["meas_date"]
    info = StreamInfo(
        name="eeg",
        channel_names=names,
        channel_types=types,
        units=units,
        nominal_rate=sfreq,
        stream_type="EEG",
        source=f"import:{path.name}",
        description={
            "reader": f"mne.io.read_raw ({fmt})",
            "mne_version": mne.__version__,
            "manufacturer": _mne_manufacturer(path, fmt),
            "filters": _mne_filters(raw),
            "original_channel_names": original,
            "channel_typing": typing,
        },
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


#: MNE's FIFF unit codes (``info["chs"][i]["unit"]``) as unit strings of the data MNE returns.
_FIFF_UNITS = {
    107: "V",
    114: "°C",
    110: "S",
    106: "C",
    112: "T",
    201: "T/m",
    1: "m",
    2: "kg",
    3: "s",
    4: "A",
    5: "K",
    101: "Hz",
    102: "N",
    103: "Pa",
    109: "Ohm",
}
#: BrainVision units MNE scales to the base unit when it reads them (its ``_unit_dict``).
_BV_SCALED = {"µS": "S", "uS": "S", "μS": "S"}


def _mne_units(raw: Any, fmt: str) -> list[str]:
    """The unit of each channel's samples as ``raw.get_data()`` returns them.

    Voltages are volts (MNE scales them); other channels keep the unit the file names
    (``raw._orig_units``: EDF physical dimension, BrainVision unit column), since MNE passes
    their values through unscaled, except BrainVision micro-siemens, which MNE returns in S.
    """
    orig = dict(getattr(raw, "_orig_units", None) or {})
    if fmt in ("EDF", "BDF") and raw.filenames and raw.filenames[0]:
        # MNE reports every non-voltage EDF unit as "n/a"; the header has the real one.
        orig.update(_edf_dimensions(Path(raw.filenames[0])))
    units = []
    for ch in raw.info["chs"]:
        code = int(ch["unit"])
        named = str(orig.get(ch["ch_name"], "") or "").strip()
        if named.lower() in _VOLT_UNITS:
            units.append("V")
        elif named and named.lower() not in _NO_UNITS:
            units.append(_BV_SCALED.get(named, named) if fmt == "BrainVision" else named)
        elif code == 107:
            units.append("V")
        elif code in _FIFF_UNITS and int(ch["unit_mul"]) == 0:
            units.append(_FIFF_UNITS[code])
        else:
            units.append("a.u.")
    return units


def _edf_dimensions(path: Path) -> dict[str, str]:
    """Label -> physical dimension of each signal of an EDF/BDF header (EDF spec, section 2)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            ns = int(head[252:256].decode("ascii", "replace").strip() or 0)
            labels = f.read(16 * ns)
            f.seek(256 + ns * (16 + 80))
            dims = f.read(8 * ns)
    except (OSError, ValueError):
        return {}  # MNE read the file; keep its units rather than fail here
    out = {}
    for i in range(ns):
        label = labels[16 * i : 16 * i + 16].decode("latin-1").strip()
        out[label] = dims[8 * i : 8 * i + 8].decode("latin-1").strip()
    return out


def _mne_filters(raw: Any) -> dict[str, float | None]:
    """The recording's filters as MNE read them from the file; None where none is stated.

    MNE fills ``highpass`` 0 and ``lowpass`` at Nyquist when a file says nothing (or says DC
    and no low-pass), so those values are stored as None (no filter stated).
    """
    nyquist = float(raw.info["sfreq"]) / 2.0
    hp = float(raw.info.get("highpass") or 0.0)
    lp = float(raw.info.get("lowpass") or 0.0)
    return {
        "highpass": hp if np.isfinite(hp) and hp > 0 else None,
        "lowpass": lp if np.isfinite(lp) and 0 < lp < nyquist - 1e-9 else None,
    }


_BRAIN_PRODUCTS = re.compile(
    r"brain ?products|brainamp|actichamp|liveamp|vision recorder|v-amp|quickamp", re.I
)


def _mne_manufacturer(path: Path, fmt: str) -> str | None:
    """The device maker when the file says it: BDF is BioSemi's format; a BrainVision header
    that names Brain Products, its amplifiers or BrainVision Recorder; otherwise None."""
    if fmt == "BDF":
        return "BioSemi"
    if fmt == "BrainVision":
        try:
            text = path.read_text(encoding="latin-1", errors="replace")
        except OSError:
            return None
        # The format's own first line names "Brain Vision" for every writer (pybv, MNE, ...).
        body = text.split("\n", 1)[1] if "\n" in text else ""
        return "Brain Products" if _BRAIN_PRODUCTS.search(body) else None
    return None


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
    desc: dict[str, Any] = {
        "format": "OpenBCI GUI v6 text",
        "board": board,
        "header": header,
        "manufacturer": "OpenBCI",
        "filters": {"highpass": None, "lowpass": None},
    }
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
