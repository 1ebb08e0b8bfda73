"""Write a session's EEG (and its events) in other tools' formats (``recall-lab export``).

- ``fif``: MNE's own format, float32 samples in volts; events as annotations.
- ``edf``: EDF+ through MNE/edfio; 16-bit samples scaled per channel to the channel's range,
  so values are kept to within (max - min) / 65535 of the channel; events as EDF+ annotations.
- ``brainvision``: ``.vhdr``/``.vmrk``/``.eeg`` through MNE/pybv, float32 samples; events as
  markers.
- ``bids``: a BIDS EEG dataset through mne-bids (BrainVision data, ``events.tsv`` from the
  events, ``channels.tsv``, sidecars); subject = the participant pseudonym.
- ``brainflow``: the text layout BrainFlow's ``DataFilter.write_file`` writes and its
  playback-file board replays, with the EEG in the rows of a chosen master board, timestamps in
  UNIX seconds (through the stored clock mapping) and events in the marker row.

Events become annotations named ``label`` or ``label/value`` (see
:func:`data_schema.reader.annotation_description`), placed at the sample nearest their time.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from data_schema.errors import SessionExistsError, SessionFileError
from data_schema.reader import Session, Stream, annotation_description

log = logging.getLogger(__name__)

FORMATS = ("fif", "edf", "brainvision", "bids", "brainflow")

_SUFFIX = {
    "fif": (".fif", ".fif.gz"),
    "edf": (".edf",),
    "brainvision": (".vhdr",),
    "brainflow": (".csv", ".txt", ".tsv"),
    "bids": (),
}

Progress = Callable[[str], None]


def _refuse_existing(out: Path, what: str = "file") -> None:
    if out.exists():
        raise SessionExistsError(
            f"{out} already exists; recall-lab never overwrites a {what}: choose another --out"
        )


def _check_out(out: Path, fmt: str) -> None:
    suffixes = _SUFFIX[fmt]
    if suffixes and not any(out.name.lower().endswith(s) for s in suffixes):
        raise SessionFileError(
            f"--out {out.name}: a {fmt} export must end in {' or '.join(suffixes)}"
        )
    if not out.parent.exists():
        raise SessionFileError(f"folder {out.parent} does not exist: create it first")


def export_session(
    path: str | Path,
    fmt: str,
    out: str | Path,
    *,
    stream: str = "eeg",
    task: str = "recall",
    line_freq: float | None = None,
    master_board: str | int = "synthetic",
    progress: Progress | None = None,
) -> list[Path]:
    """Export ``stream`` of the session (or any recording recall-lab reads) to ``out``.

    Parameters
    ----------
    path
        A session ``.h5`` (or any file :func:`data_schema.recordings.load_recording` reads).
    fmt
        One of :data:`FORMATS`.
    out
        The new file (``fif``, ``edf``, ``brainvision``, ``brainflow``) or the BIDS root folder
        (``bids``; may be an existing BIDS dataset, to which this recording is added).
    task
        BIDS task label.
    line_freq
        Power-line frequency for BIDS (``PowerLineFrequency``); ``None`` writes ``n/a``.
    master_board
        For ``brainflow``: the board whose row layout the file follows (default synthetic).

    Returns
    -------
    list of Path
        The files written.
    """
    from data_schema.recordings import load_recording

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise SessionFileError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    out = Path(out)
    if fmt != "bids":
        _refuse_existing(out)
        _check_out(out, fmt)
    say = progress or (lambda _msg: None)
    say(f"reading {Path(path).name}")
    session = load_recording(path)
    if stream not in session.streams:
        have = ", ".join(session.streams) or "none"
        raise SessionFileError(f"{Path(path).name} has no stream {stream!r} (streams: {have})")
    if session.streams[stream].n_samples == 0:
        raise SessionFileError(f"{Path(path).name}: stream {stream!r} holds no samples")
    say(f"writing {fmt}")
    if fmt == "brainflow":
        return export_brainflow(session, out, stream=stream, master_board=master_board)
    raw = session.to_raw(stream)
    if fmt == "fif":
        with warnings.catch_warnings():
            # MNE asks for names ending in raw.fif; users pick their own names.
            warnings.filterwarnings("ignore", message=".*does not conform to MNE naming")
            raw.save(out, overwrite=False, verbose="error")
        return [out]
    if fmt in ("edf", "brainvision"):
        import mne

        raw = _without_commas(raw) if fmt == "brainvision" else raw

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "exporting to a lossy format" is documented above
            mne.export.export_raw(out, raw, fmt=fmt, overwrite=False, verbose="error")
        if fmt == "brainvision":
            return [out, out.with_suffix(".vmrk"), out.with_suffix(".eeg")]
        return [out]
    return export_bids(session, raw, out, task=task, line_freq=line_freq)


def _without_commas(raw):
    """BrainVision marker lines are comma-separated, and MNE's reader splits on every comma
    (pybv's ``\\1`` escape is not decoded), so commas in descriptions become ``;``."""
    ann = raw.annotations
    if not any("," in d for d in ann.description):
        return raw
    import mne

    raw = raw.copy()
    raw.set_annotations(
        mne.Annotations(
            ann.onset,
            ann.duration,
            [d.replace(",", ";") for d in ann.description],
            orig_time=ann.orig_time,
        )
    )
    return raw


# ----------------------------------------------------------------------------- BIDS
def bids_subject(participant_id: str) -> str:
    """The BIDS subject label for a pseudonym (BIDS labels are letters and digits only)."""
    label = re.sub(r"[^A-Za-z0-9]", "", participant_id or "")
    if not label:
        raise SessionFileError(
            "the session has no participant pseudonym to name the BIDS subject; import it again "
            "with --participant"
        )
    return label


def export_bids(
    session: Session, raw, root: Path, *, task: str = "recall", line_freq: float | None = None
) -> list[Path]:
    """Write ``raw`` into the BIDS dataset at ``root`` (created if missing)."""
    from mne_bids import BIDSPath, write_raw_bids

    if root.exists() and not root.is_dir():
        raise SessionExistsError(f"{root} exists and is not a folder: choose another --out")
    if root.is_dir() and any(root.iterdir()) and not (root / "dataset_description.json").exists():
        raise SessionExistsError(
            f"{root} is a non-empty folder that is not a BIDS dataset: choose another --out"
        )
    if not re.fullmatch(r"[A-Za-z0-9]+", task):
        raise SessionFileError(f"--task {task!r}: BIDS task labels are letters and digits only")
    subject = bids_subject(session.participant_id or "P000")
    raw = raw.copy()
    raw.info["line_freq"] = line_freq
    bids_path = BIDSPath(subject=subject, task=task, root=root, datatype="eeg", suffix="eeg")
    existing = list(root.glob(f"sub-{subject}/eeg/sub-{subject}_task-{task}_eeg.*"))
    if existing:
        raise SessionExistsError(
            f"{existing[0]} already exists; recall-lab never overwrites: choose another --out "
            "or --task"
        )
    with warnings.catch_warnings():
        # mne-bids warns that it converts the in-memory data and that line_freq may be n/a.
        warnings.simplefilter("ignore")
        written = write_raw_bids(
            raw,
            bids_path,
            format="BrainVision",
            allow_preload=True,
            overwrite=False,
            verbose="error",
        )
    return sorted(p for p in Path(written.directory).iterdir() if p.is_file())


# ----------------------------------------------------------------------------- BrainFlow
def unix_times(session: Session, stream: Stream) -> np.ndarray:
    """The stream's timestamps in UNIX seconds, through its stored clock mapping.

    BrainFlow recordings store ``lsl = unix + offset``; imported files on a UNIX clock are
    kept as is; otherwise the first sample is anchored at the session's ``started_at`` (or the
    file's first-sample time) and the relative timing is kept.
    """
    ts = stream.timestamps.astype(np.float64)
    cm = stream.clock_mapping or {}
    if cm.get("from") == "unix" and "offset" in cm:
        return ts - float(cm["offset"])
    if cm.get("clock") == "unix":
        return ts.copy()
    anchor = cm.get("first_sample_utc") or session.attrs.get("started_at")
    start = 0.0
    if anchor:
        try:
            start = datetime.fromisoformat(str(anchor).replace("Z", "+00:00")).timestamp()
        except ValueError:
            start = 0.0
    return start + (ts - ts[0])


def marker_codes(events: list) -> tuple[list[float], dict[str, str]]:
    """Numeric marker values for events: numbers stay numbers, other events get codes.

    Returns the code of each event and the legend ``{code: annotation description}`` for the
    events that needed one.
    """
    values: list[float | None] = []
    for e in events:
        v = None
        if e.label == "marker":
            try:
                v = float(e.value)
            except ValueError:
                v = None
        values.append(v if v not in (None, 0.0) else None)
    next_code = max([abs(v) for v in values if v is not None] + [0.0])
    next_code = float(int(next_code) + 1)
    legend: dict[str, float] = {}
    codes = []
    for e, v in zip(events, values):
        if v is None:
            desc = annotation_description(e)
            if desc not in legend:
                legend[desc] = next_code
                next_code += 1
            v = legend[desc]
        codes.append(v)
    return codes, {f"{c:g}": d for d, c in legend.items()}


def export_brainflow(
    session: Session, out: Path, *, stream: str = "eeg", master_board: str | int = "synthetic"
) -> list[Path]:
    """Write the BrainFlow playback-file layout for ``master_board``.

    Samples are written in the stream's stored units (BrainFlow's own EEG is microvolts); a
    legend for non-numeric events is written beside the file as ``<out>.markers.json``.
    """
    from drivers.brainflow_source import _brainflow, resolve_board_id

    bf = _brainflow()
    from brainflow.data_filter import DataFilter

    board_id = resolve_board_id(master_board)
    shim = bf.BoardShim
    try:
        n_rows = shim.get_num_rows(board_id)
        eeg_rows = list(shim.get_eeg_channels(board_id))
        ts_row = shim.get_timestamp_channel(board_id)
        marker_row = shim.get_marker_channel(board_id)
        rate = shim.get_sampling_rate(board_id)
    except bf.BrainFlowError:
        raise SessionFileError(
            f"BrainFlow board {master_board} has no EEG/timestamp/marker rows to export into; "
            "choose another --master-board (e.g. synthetic)"
        ) from None
    s = session.streams[stream]
    if s.info.n_channels > len(eeg_rows):
        raise SessionFileError(
            f"the {stream} stream has {s.info.n_channels} channels but board {master_board} "
            f"has {len(eeg_rows)} EEG rows; choose a --master-board with enough channels"
        )
    n = s.n_samples
    table = np.zeros((n_rows, n), dtype=np.float64)
    table[eeg_rows[: s.info.n_channels]] = s.data[:n].T
    table[ts_row] = unix_times(session, s)
    events = [e for e in session.events if s.timestamps[0] <= e.timestamp <= s.timestamps[-1]]
    files = [out]
    if events:
        codes, legend = marker_codes(events)
        times = np.array([e.timestamp for e in events])
        idx = np.clip(np.searchsorted(s.timestamps, times), 0, n - 1)
        prev = np.clip(idx - 1, 0, n - 1)
        # The nearest sample, as for the MNE annotations of the other formats.
        idx = np.where(
            np.abs(s.timestamps[prev] - times) < np.abs(s.timestamps[idx] - times), prev, idx
        )
        for i, code in zip(idx, codes):
            # One marker per sample: a second event on the same sample moves to the next free
            # one, so none is dropped.
            j = int(i)
            while j < n - 1 and table[marker_row, j] != 0:
                j += 1
            table[marker_row, j] = code
        if legend:
            legend_path = out.with_name(out.name + ".markers.json")
            _refuse_existing(legend_path)
            legend_path.write_text(json.dumps(legend, indent=1, ensure_ascii=False))
            files.append(legend_path)
    DataFilter.write_file(table, str(out), "w")
    if s.info.nominal_rate and abs(s.info.nominal_rate - rate) > 1e-6:
        log.warning(
            "%s was sampled at %g Hz but board %s runs at %s Hz; tools will assume %s Hz",
            stream,
            s.info.nominal_rate,
            master_board,
            rate,
            rate,
        )
    return files
