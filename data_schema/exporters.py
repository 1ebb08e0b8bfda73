"""Write a session's EEG (and its events) in other tools' formats (``recall-lab export``).

- ``fif``: MNE's own format, float32 samples in volts; events as annotations.
- ``edf``: EDF+ written with edfio (:mod:`data_schema.export_edf`): 16-bit samples scaled to
  each channel's own range, so values are kept to within (max - min) / 65535 of that channel;
  trigger channels 1:1; records that divide the data; events as EDF+ annotations.
- ``brainvision``: ``.vhdr``/``.vmrk``/``.eeg`` through MNE/pybv, float32 samples; events as
  markers.
- ``bids``: a BIDS EEG dataset through mne-bids (BrainVision data, ``events.tsv`` from the
  events, ``channels.tsv``, sidecars); subject = the participant pseudonym. A session's face
  video and voice go beside it into ``beh/`` (MP4, WAV, timing table, sidecars:
  :mod:`data_schema.export_media`).
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from data_schema.errors import SessionExistsError, SessionFileError
from data_schema.reader import Session, Stream, annotation_description
from data_schema.types import UNIT_SCALE_TO_VOLTS

_VOLTAGE_TYPES = {"eeg", "eog", "ecg", "emg"}

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
    bids_session: str | None = None,
    bids_run: int | None = None,
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
    bids_session, bids_run
        For ``bids``: the session and run entities (a study's visit and run), if any.

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
        return export_brainflow(
            session, out, stream=stream, master_board=master_board, progress=say
        )
    s = session.streams[stream]
    if fmt == "edf" and not s.info.nominal_rate:
        raise SessionFileError(
            f"stream {stream!r} has an irregular rate (nominal rate 0) and EDF holds only "
            "regularly sampled signals: export a regular stream, or use fif or brainflow"
        )
    raw = recording_raw(session, stream, say)
    if fmt == "edf":
        from data_schema.export_edf import write_edf

        return write_edf(raw, out, s.info.channel_types, say)
    if fmt == "fif":
        with warnings.catch_warnings():
            # MNE asks for names ending in raw.fif; users pick their own names.
            warnings.filterwarnings("ignore", message=".*does not conform to MNE naming")
            raw.save(out, overwrite=False, verbose="error")
        return [out]
    if fmt == "brainvision":
        import mne

        raw = _without_commas(raw)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "exporting to a lossy format" is documented above
            mne.export.export_raw(out, raw, fmt=fmt, overwrite=False, verbose="error")
        _mark_new_segments(out.with_suffix(".vmrk"))
        return [out, out.with_suffix(".vmrk"), out.with_suffix(".eeg")]
    return export_bids(
        session,
        raw,
        out,
        task=task,
        line_freq=line_freq,
        stream=stream,
        session_label=bids_session,
        run=bids_run,
        progress=say,
    )


def _mark_new_segments(vmrk: Path) -> None:
    """Add a BrainVision ``New Segment`` marker at every break (``BAD_ACQ_SKIP`` comment).

    pybv writes only Stimulus, Response and Comment markers; BrainVision Analyzer and MNE
    know a discontinuity by its ``New Segment`` marker, so one is added where each break's
    comment stands, and the markers are numbered again in order.
    """
    lines = vmrk.read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    n = 0
    added = False
    for line in lines:
        m = re.match(r"^Mk\d+=(.*)$", line)
        if m is None:
            out.append(line)
            continue
        fields = m.group(1).split(",")
        n += 1
        out.append(f"Mk{n}={m.group(1)}")
        if len(fields) >= 3 and fields[0] == "Comment" and "BAD_ACQ_SKIP" in fields[1]:
            n += 1
            out.append(f"Mk{n}=New Segment,,{fields[2]},1,0")
            added = True
    if added:
        vmrk.write_text("\n".join(out) + "\n", encoding="utf-8")


def recording_raw(session: Session, stream: str, say: Progress):
    """The stream as MNE ``Raw`` for export, dated and with its breaks marked.

    - ``meas_date`` is the recording's own first-sample time (through the stream's clock
      mapping, as :func:`unix_times`), not the time the session file was written or imported.
    - Each break in the timestamps longer than
      :func:`data_schema.summary.gap_threshold` (the validator's gap rule) becomes a
      zero-length annotation ``BAD_ACQ_SKIP <seconds> s missing`` at the first sample after
      it: the exported samples are contiguous, so the annotation marks where the break is and
      names its true length without flagging the real samples after it as bad.
    """
    import mne

    from data_schema.summary import gap_threshold

    raw = session.to_raw(stream)
    s = session.streams[stream]
    ann = raw.annotations
    onsets = list(ann.onset - (raw.first_samp / raw.info["sfreq"] if ann.orig_time else 0.0))
    durations, texts = list(ann.duration), list(ann.description)
    rate = s.info.nominal_rate
    if rate and s.n_samples > 1:
        diffs = np.diff(s.timestamps.astype(np.float64))
        for i in np.flatnonzero(diffs > gap_threshold(rate)):
            missing = float(diffs[i]) - 1.0 / rate
            onsets.append((i + 1) / raw.info["sfreq"])
            durations.append(0.0)
            texts.append(f"BAD_ACQ_SKIP {missing:.3f} s missing")
        n_gaps = len(texts) - len(ann)
        if n_gaps:
            total = float(np.sum(diffs[diffs > gap_threshold(rate)]) - n_gaps / rate)
            say(
                f"{n_gaps} break(s) in the timestamps ({total:.3f} s in all) marked as "
                "BAD_ACQ_SKIP annotations; the exported samples are contiguous"
            )
    start = unix_times(session, s)[0]
    meas_date = None
    cm = s.clock_mapping or {}
    knows_time = (
        (cm.get("from") == "unix" and "offset" in cm)
        or cm.get("clock") == "unix"
        or bool(cm.get("first_sample_utc"))
    )
    if not knows_time and session.attrs.get("imported_from"):
        # An import's started_at is the time of the import, not of the recording.
        say(
            f"{session.attrs['imported_from']} stated no recording time that was kept: "
            "the export carries no recording date"
        )
    elif np.isfinite(start) and start > 0:
        meas_date = datetime.fromtimestamp(float(start), tz=UTC)
    raw.set_annotations(None)
    raw.set_meas_date(meas_date)
    order = np.argsort(onsets, kind="stable")
    raw.set_annotations(
        mne.Annotations(
            # With a date, MNE counts onsets from it; without, from the first sample.
            np.asarray(onsets, float)[order]
            + (raw.first_samp / raw.info["sfreq"] if meas_date else 0.0),
            np.asarray(durations, float)[order],
            [texts[i] for i in order],
            orig_time=meas_date,
        )
    )
    return raw


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
    session: Session,
    raw,
    root: Path,
    *,
    task: str = "recall",
    line_freq: float | None = None,
    stream: str = "eeg",
    session_label: str | None = None,
    run: int | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Write ``raw`` into the BIDS dataset at ``root`` (created if missing), as
    ``sub-<pseudonym>[_ses-<session_label>]_task-<task>[_run-<run>]``.

    The session's face video(s) and voice (audio streams), if any, go beside it into
    ``beh/`` as MP4 and WAV with sidecars and a frame timing table, listed in
    ``.bidsignore`` (:mod:`data_schema.export_media`).
    """
    from mne_bids import BIDSPath, write_raw_bids

    from data_schema.export_media import export_media, plan_media

    if root.exists() and not root.is_dir():
        raise SessionExistsError(f"{root} exists and is not a folder: choose another --out")
    if root.is_dir() and any(root.iterdir()) and not (root / "dataset_description.json").exists():
        raise SessionExistsError(
            f"{root} is a non-empty folder that is not a BIDS dataset: choose another --out"
        )
    if not re.fullmatch(r"[A-Za-z0-9]+", task):
        raise SessionFileError(f"--task {task!r}: BIDS task labels are letters and digits only")
    if "eeg" not in raw.get_channel_types():
        raise SessionFileError(
            "the stream has no EEG channels and a BIDS EEG dataset needs at least one: "
            "export another --stream, or use fif or edf"
        )
    subject = bids_subject(session.participant_id or "P000")
    raw = raw.copy()
    raw.info["line_freq"] = line_freq
    if session_label is not None and not re.fullmatch(r"[A-Za-z0-9]+", session_label):
        raise SessionFileError(f"BIDS session {session_label!r}: letters and digits only")
    bids_path = BIDSPath(
        subject=subject,
        session=session_label,
        task=task,
        run=None if run is None else f"{int(run):02d}",
        root=root,
        datatype="eeg",
        suffix="eeg",
    )
    existing = list(bids_path.directory.glob(f"{bids_path.basename}.*"))
    stem = bids_path.basename.removesuffix("_eeg")
    beh = Path(bids_path.directory).parent / "beh"
    if existing:
        raise SessionExistsError(
            f"{existing[0]} already exists; recall-lab never overwrites: choose another --out "
            "or --task"
        )
    plan_media(session, stem, beh, stream)  # refuses existing media files before writing
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
    files = sorted(p for p in Path(written.directory).iterdir() if p.is_file())
    source = session.streams.get(stream)
    _fix_bids_sidecars(files, raw, source.info.description if source else {})
    return files + export_media(
        session, root, stem, beh, task=task, eeg_stream=stream, progress=progress
    )


def _bids_number(x) -> float | str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return v if np.isfinite(v) and v > 0 else "n/a"


def _fix_bids_sidecars(files: list[Path], raw, description: dict) -> None:
    """Say in the sidecars what the source said, not what mne-bids assumes.

    - ``Manufacturer``: the stream description's ``manufacturer``, else ``n/a``.
    - Filters: the description's ``filters`` (``{"highpass": Hz|None, "lowpass": Hz|None}``)
      as ``HardwareFilters`` (what the recording device applied) and ``low_cutoff`` /
      ``high_cutoff`` in ``channels.tsv``; ``n/a`` where the source said nothing.
      ``SoftwareFilters`` is ``n/a``: recall-lab filters nothing it exports.
    - Trigger (``stim``) channels have no physical unit: ``units`` ``n/a``.
    """
    filters = description.get("filters") if isinstance(description, dict) else None
    filters = filters if isinstance(filters, dict) else {}
    hp, lp = _bids_number(filters.get("highpass")), _bids_number(filters.get("lowpass"))
    for path in files:
        if path.name.endswith("_eeg.json"):
            side = json.loads(path.read_text())
            manufacturer = (description or {}).get("manufacturer")
            side["Manufacturer"] = str(manufacturer) if manufacturer else "n/a"
            if hp == "n/a" and lp == "n/a":
                side["HardwareFilters"] = "n/a"
            else:
                side["HardwareFilters"] = {"SourceFilters": {"HighpassHz": hp, "LowpassHz": lp}}
            side["SoftwareFilters"] = "n/a"
            path.write_text(json.dumps(side, indent=4, ensure_ascii=False))
        elif path.name.endswith("_channels.tsv"):
            lines = path.read_text().splitlines()
            head = lines[0].split("\t")
            col = {name: i for i, name in enumerate(head)}
            rows = [line.split("\t") for line in lines[1:]]
            for row in rows:
                if "low_cutoff" in col:
                    row[col["low_cutoff"]] = f"{hp:g}" if hp != "n/a" else "n/a"
                if "high_cutoff" in col:
                    row[col["high_cutoff"]] = f"{lp:g}" if lp != "n/a" else "n/a"
                if row[col["type"]] == "TRIG" and "units" in col:
                    row[col["units"]] = "n/a"
            path.write_text("\n".join("\t".join(r) for r in [head, *rows]) + "\n")


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
    session: Session,
    out: Path,
    *,
    stream: str = "eeg",
    master_board: str | int = "synthetic",
    progress: Progress | None = None,
) -> list[Path]:
    """Write the BrainFlow playback-file layout for ``master_board``.

    Voltage channels (EEG, EOG, ECG, EMG) are written in microvolts, as BrainFlow's own EEG is,
    whatever unit the session stores them in (``V`` for MNE imports); other channels as
    stored. BrainFlow's text keeps 6 decimals, i.e. 1e-6 uV. A legend for non-numeric events
    is written beside the file as ``<out>.markers.json``. The marker row holds one code per
    sample: events that fall on a sample already taken move to the next free sample, and a
    progress line says how many moved and by how far.
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
    to_uv = np.array(
        [
            UNIT_SCALE_TO_VOLTS.get(u, 1e-6) / 1e-6 if t in _VOLTAGE_TYPES else 1.0
            for u, t in zip(s.info.units, s.info.channel_types)
        ]
    )
    table[eeg_rows[: s.info.n_channels]] = s.data[:n].T.astype(np.float64) * to_uv[:, None]
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
        moved = []
        for i, code in zip(idx, codes):
            # One marker per sample: a second event on the same sample moves to the next free
            # one, so none is dropped.
            j = int(i)
            while j < n - 1 and table[marker_row, j] != 0:
                j += 1
            if table[marker_row, j] != 0:  # the last sample is taken: look back instead
                j = int(i)
                while j > 0 and table[marker_row, j] != 0:
                    j -= 1
            table[marker_row, j] = code
            if j != i:
                moved.append(abs(j - int(i)))
        if moved:
            rate_hz = s.info.nominal_rate or s.effective_rate
            (progress or log.warning)(
                f"{len(moved)} marker(s) shared a sample with another and moved to the next "
                f"free sample (at most {max(moved)} sample(s), "
                f"{max(moved) / rate_hz * 1e3:.1f} ms)"
            )
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
