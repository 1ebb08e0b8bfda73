"""Import the DEAP dataset's preprocessed Python files as sessions with music-listening blocks.

DEAP (Koelstra et al., "DEAP: A database for emotion analysis using physiological signals",
IEEE Trans. Affective Computing 3(1), 2012; https://www.eecs.qmul.ac.uk/mmv/datasets/deap/)
recorded 32 participants watching 40 one-minute music videos. Its
``data_preprocessed_python/sNN.dat`` (NN = 01..32) is a Python pickle of a dict:

``data``
    trials x 40 channels x samples (40 x 40 x 8064 in the published files): 128 Hz, the
    first 3 s of each trial a pre-trial baseline, then 60 s of the music video.
``labels``
    trials x 4: valence, arousal, dominance, liking, real numbers on the 1-9 scales the
    participant rated right after each trial.

Channels 1-32 are EEG in the "Geneva order" (:data:`EEG_CHANNELS`); 33-40 are hEOG, vEOG
(bipolar EOG), zEMG, tEMG (zygomaticus and trapezius EMG), GSR, a respiration belt, a
plethysmograph and a temperature. The EEG was downsampled to 128 Hz, cleaned of EOG
artefacts, band-passed 4-45 Hz and re-referenced to the common average; channels 33-40 were
only downsampled and segmented. Trials are in video (``Experiment_id``) order, so trial k is
the same video for every participant.

Checked against the dataset's readme as quoted in public code and pages the search tool
found (the readme page itself only in part): the two arrays and their shapes, the label
order, the channel list and order, the preprocessing steps, the Experiment_id order, GSR in
ohm ("values from Twente converted to Geneva format (Ohm)"), the original recordings being
BioSemi ``.bdf`` files. Not verified (no real file or unit statement was at hand):

- that the EEG, EOG and EMG samples are microvolts (the readme names no unit; BioSemi
  ``.bdf`` recordings, which they come from, are in µV): stored as ``uV``;
- units of the respiration belt, plethysmograph and temperature (none documented): ``a.u.``;
- the arrays' dtype (taken to be float64; any integer or float dtype is accepted, and samples
  are stored as float32, as every session stream is);
- that the first 3 s are the baseline: the readme says the data "was segmented into 60
  second trials and a 3 second pre-trial baseline removed", yet 8064 samples are 63 s; the
  usual reading, taken here, is that the 3 s baseline precedes the 60 s in each trial;
- the pickle protocol of the published files (any protocol loads).

Timing. The trials are cut out of one recording, but the file keeps neither their start times
nor what happened between them (rating screens of unknown length), so nothing about that time
is invented: the trials are written one after another on one time axis starting at
:data:`T0`, with :data:`GAP_S` seconds without samples between them, and each gap is marked
the way the session format marks a break in a stream (``recorder``/``gap_start`` and
``gap_end``, per stream). Within a trial the samples are exactly 1/128 s apart.

Events per trial, clip id ``deap-NN`` (NN the video's Experiment_id 01..40), block ``deap``:
``deap-NN-baseline`` (kind ``baseline``, the 3 s before the video) and ``deap-NN`` (kind
``listening``, the video) as ``protocol`` phases, ``stimulus``/``clip_start`` and
``clip_end`` around the video, then ``deap-NN-rating`` (kind ``sam``, :data:`RATING_S` long,
in the gap after the video) holding ``participant``/``sam_valence``, ``sam_arousal``,
``sam_dominance`` and ``sam_liking``. ``phase_end`` is stamped at the phase's last sample, as
:mod:`decoding.simulate` does; the rating phase, which has no samples, ends
:data:`RATING_S` - 1/128 s after it starts, the same convention. The ratings' times are not in
the file; all four are stamped in the middle of the rating phase.

The pickle is read with an unpickler that builds numpy arrays and nothing else, so a file
that is not what it claims cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import SessionFileError
from data_schema.types import Event, StreamInfo

#: Sampling rate of the preprocessed files (Hz).
RATE = 128.0
#: Seconds of pre-trial baseline at the start of each trial.
BASELINE_S = 3.0
#: Seconds without samples written between two trials.
GAP_S = 5.0
#: Length of each trial's rating phase (seconds, inside the gap after the video).
RATING_S = 1.0
#: Time of the first sample of the first trial (any origin will do: LSL clocks are arbitrary).
T0 = 1000.0
#: ``import_format`` root attribute of the sessions written here.
IMPORT_FORMAT = "deap-preprocessed-python"
#: Block id of the music-listening events.
BLOCK = "deap"
#: The four rating scales, in the order of ``labels``' columns.
SCALES = ("valence", "arousal", "dominance", "liking")
#: Videos in the experiment (clip ids deap-01..deap-40).
N_VIDEOS = 40
#: Channels per trial in a preprocessed file.
N_CHANNELS = 40
#: Fewest samples a trial may have: the baseline and one second of video.
MIN_SAMPLES = int(BASELINE_S * RATE) + int(RATE)

#: EEG channels 1-32 in the Geneva order of the preprocessed files.
EEG_CHANNELS = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
)  # fmt: skip
#: Channels 33-40: (name, MNE channel type, unit as stored, the readme's description).
PERIPHERAL_CHANNELS = (
    ("hEOG", "eog", "uV", "hEOG (horizontal EOG, hEOG1 - hEOG2)"),
    ("vEOG", "eog", "uV", "vEOG (vertical EOG, vEOG1 - vEOG2)"),
    ("zEMG", "emg", "uV", "zEMG (Zygomaticus Major EMG, zEMG1 - zEMG2)"),
    ("tEMG", "emg", "uV", "tEMG (Trapezius EMG, tEMG1 - tEMG2)"),
    ("GSR", "gsr", "Ohm", "GSR (values from Twente converted to Geneva format (Ohm))"),
    ("Respiration belt", "resp", "a.u.", "Respiration belt"),
    ("Plethysmograph", "misc", "a.u.", "Plethysmograph"),
    ("Temperature", "temperature", "a.u.", "Temperature"),
)
#: Name of the stream holding channels 33-40.
PERIPHERAL_STREAM = "peripheral"

#: Participant files of the dataset: s01.dat .. s32.dat.
FILE_NAME = re.compile(r"^s(\d{2})\.dat$")

Progress = Callable[[int, int], None]


class DeapFileError(SessionFileError):
    """A file is not a DEAP preprocessed Python file (exit status 2)."""


@dataclass
class DeapParticipant:
    """One participant's preprocessed DEAP file.

    Parameters
    ----------
    number
        The participant's number from the file name (``s07.dat`` -> 7); None when the file
        is named otherwise.
    data
        trials x 40 channels x samples, as the file holds them.
    labels
        trials x 4: valence, arousal, dominance, liking.
    file_name
        The file's name (no folder).
    """

    number: int | None
    data: np.ndarray
    labels: np.ndarray
    file_name: str = ""

    @property
    def n_trials(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_samples(self) -> int:
        """Samples per trial (baseline and video)."""
        return int(self.data.shape[2])

    @property
    def listening_s(self) -> float:
        """Seconds of video per trial (60 in the published files)."""
        return (self.n_samples - int(BASELINE_S * RATE)) / RATE


# ----------------------------------------------------------------------------- reading
def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only callables a DEAP pickle needs: numpy's array and dtype reconstruction.

    Python 2 numpy (the published files) names ``numpy.core.multiarray``; numpy 2 names
    ``numpy._core``; pickles written by Python 3 at protocol <= 2 encode bytes with
    ``_codecs.encode``, and protocol 5 builds arrays with ``_frombuffer``.
    """
    import _codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    found: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, numbers, strings and numpy arrays only."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 pickles of numpy arrays
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"it asks for {module}.{name}, which a DEAP file never holds (only numpy "
                "arrays are loaded from a pickle, so a file cannot run code)"
            )
        return found


def _member(obj: dict, key: str) -> Any:
    """``obj[key]``, also when the pickle was loaded with byte-string keys."""
    if key in obj:
        return obj[key]
    return obj.get(key.encode("ascii"))


def read_deap_file(path: str | Path) -> DeapParticipant:
    """Read one participant's ``data_preprocessed_python/sNN.dat``.

    Raises
    ------
    DeapFileError
        One line saying why: missing, a folder, empty, not a pickle, no ``data``/``labels``,
        wrong shapes (``data`` must be trials x 40 x samples with at least
        :data:`MIN_SAMPLES` samples and at most 40 trials, ``labels`` trials x 4), ratings
        outside 1-9, or values that are not finite.
    """
    p = Path(path)
    name = p.name
    if not p.exists():
        raise DeapFileError(f"{p}: no such file")
    if p.is_dir():
        raise DeapFileError(f"{p} is a folder, not a DEAP file")
    if p.stat().st_size == 0:
        raise DeapFileError(f"{p} is empty (0 bytes): nothing to read")
    what = "not a DEAP preprocessed file (data_preprocessed_python/sNN.dat)"
    try:
        with open(p, "rb") as f:
            obj = _ArrayUnpickler(f).load()
    except MemoryError:
        raise DeapFileError(f"{name}: {what}: too large to load") from None
    except Exception as exc:  # unpickling raises anything from EOFError to struct.error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeapFileError(f"{name}: {what}: not a Python pickle ({first})") from None
    if not isinstance(obj, dict):
        raise DeapFileError(
            f"{name}: {what}: the pickle holds a {type(obj).__name__}, not a dict with "
            "'data' and 'labels'"
        )
    missing = [k for k in ("data", "labels") if _member(obj, k) is None]
    if missing:
        raise DeapFileError(f"{name}: {what}: the pickle has no {' or '.join(map(repr, missing))}")
    data, labels = _member(obj, "data"), _member(obj, "labels")
    for key, arr in (("data", data), ("labels", labels)):
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
            raise DeapFileError(f"{name}: {what}: '{key}' is {kind}, not an array of numbers")
    if data.ndim != 3 or data.shape[1] != N_CHANNELS or data.shape[2] < MIN_SAMPLES:
        raise DeapFileError(
            f"{name}: {what}: 'data' has shape {data.shape}, not trials x {N_CHANNELS} "
            f"channels x samples (at least {MIN_SAMPLES}: {BASELINE_S:g} s baseline and 1 s "
            f"at {RATE:g} Hz; 40 x 40 x 8064 in DEAP)"
        )
    if not 1 <= data.shape[0] <= N_VIDEOS:
        raise DeapFileError(
            f"{name}: {what}: 'data' holds {data.shape[0]} trials; DEAP has 1-{N_VIDEOS} "
            "(one per video)"
        )
    if labels.shape != (data.shape[0], len(SCALES)):
        raise DeapFileError(
            f"{name}: {what}: 'labels' has shape {labels.shape}, not {data.shape[0]} trials x "
            f"{len(SCALES)} ({', '.join(SCALES)})"
        )
    for key, arr in (("data", data), ("labels", labels)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise DeapFileError(f"{name}: '{key}' holds {bad} values that are not finite")
    outside = (labels < 1) | (labels > 9)
    if outside.any():
        trial, scale = (int(i) for i in np.argwhere(outside)[0])
        raise DeapFileError(
            f"{name}: {what}: rating {float(labels[trial, scale])!r} of trial {trial + 1} "
            f"({SCALES[scale]}) is outside the 1-9 scale"
        )
    m = FILE_NAME.match(name)
    return DeapParticipant(int(m.group(1)) if m else None, data, labels, name)


# ----------------------------------------------------------------------------- timing, events
def trial_starts(
    n_trials: int, n_samples: int, *, t0: float = T0, gap: float = GAP_S
) -> np.ndarray:
    """Time of each trial's first sample: trials end to end with ``gap`` s between them.

    The gap runs from when the sample after a trial's last one would be due
    (``start + n_samples / RATE``) to the next trial's first sample.
    """
    return t0 + np.arange(n_trials) * (n_samples / RATE + gap)


def trial_timestamps(start: float, n_samples: int) -> np.ndarray:
    """Timestamps of one trial's samples."""
    return start + np.arange(n_samples, dtype=np.float64) / RATE


def clip_id(video: int) -> str:
    """``deap-NN`` for the video with Experiment_id ``video`` (1-40)."""
    return f"deap-{video:02d}"


def rating_text(value: float) -> str:
    """A rating as stored in an event's value: the real number rounded to 4 decimals."""
    return repr(round(float(value), 4))


def deap_events(
    labels: np.ndarray,
    n_samples: int,
    *,
    streams: tuple[str, ...] = ("eeg", PERIPHERAL_STREAM),
    t0: float = T0,
    gap: float = GAP_S,
) -> list[Event]:
    """The events of an imported DEAP file, in time order (see the module docstring).

    Parameters
    ----------
    labels
        trials x 4 ratings (valence, arousal, dominance, liking); trial k is video k + 1.
    n_samples
        Samples per trial (baseline and video).
    streams
        Streams whose gaps between trials are marked.
    """
    n_trials = int(labels.shape[0])
    n_base = int(BASELINE_S * RATE)
    played = (n_samples - n_base) / RATE
    period = 1.0 / RATE
    events: list[Event] = []
    starts = trial_starts(n_trials, n_samples, t0=t0, gap=gap)
    for k, start in enumerate(float(s) for s in starts):
        clip = clip_id(k + 1)

        def phase(suffix: str, kind: str, clip: str = clip) -> str:
            return json.dumps(
                {"phase": clip + suffix, "kind": kind, "memory": None, "block": BLOCK, "clip": clip}
            )

        video = start + n_base * period
        end = start + n_samples * period  # when the sample after the last would be due
        base_v, listen_v, rate_v = (
            phase("-baseline", "baseline"),
            phase("", "listening"),
            phase("-rating", "sam"),
        )
        events += [
            Event(start, "protocol", "phase_start", base_v),
            Event(video - period, "protocol", "phase_end", base_v),
            Event(video, "protocol", "phase_start", listen_v),
            Event(
                video,
                "stimulus",
                "clip_start",
                json.dumps(
                    {
                        "clip": clip,
                        "block": BLOCK,
                        "file": None,
                        "sha256": None,
                        "title": f"DEAP video {k + 1:02d}",
                        "offset": 0.0,
                        "output_latency": None,
                    }
                ),
            ),
            Event(end - period, "protocol", "phase_end", listen_v),
            Event(
                video + played,
                "stimulus",
                "clip_end",
                json.dumps({"clip": clip, "block": BLOCK, "played": played}),
            ),
        ]
        last = k == n_trials - 1
        if not last:
            events += [Event(end, "recorder", "gap_start", s) for s in streams]
        events.append(Event(end, "protocol", "phase_start", rate_v))
        events += [
            Event(end + RATING_S / 2, "participant", f"sam_{scale}", rating_text(labels[k, j]))
            for j, scale in enumerate(SCALES)
        ]
        events.append(Event(end + RATING_S - period, "protocol", "phase_end", rate_v))
        if not last:
            events += [
                Event(float(starts[k + 1]), "recorder", "gap_end", s, float(starts[k + 1]) - end)
                for s in streams
            ]
    return events


# ----------------------------------------------------------------------------- writing
def _stream_infos(participant: DeapParticipant, gap: float) -> tuple[StreamInfo, StreamInfo]:
    source = f"import:{participant.file_name}"
    common = {
        "dataset": "DEAP",
        "dataset_file": "data_preprocessed_python",
        "deap_participant": participant.number,
        "manufacturer": "BioSemi",
        "channel_typing": [],
        "trials": participant.n_trials,
        "trial_layout": (
            f"{BASELINE_S:g} s pre-trial baseline + {participant.listening_s:g} s music video "
            f"per trial, trials in video (Experiment_id) order, written one after another "
            f"with {gap:g} s gaps (no samples)"
        ),
    }
    eeg = StreamInfo(
        name="eeg",
        channel_names=list(EEG_CHANNELS),
        channel_types=["eeg"] * len(EEG_CHANNELS),
        units=["uV"] * len(EEG_CHANNELS),
        nominal_rate=RATE,
        stream_type="EEG",
        source=source,
        description={
            **common,
            # Offline filters, not the amplifier's: the samples as stored passed through them.
            "filters": {"highpass": 4.0, "lowpass": 45.0},
            "preprocessing": (
                "DEAP: downsampled to 128 Hz, EOG artefacts removed, 4-45 Hz band-pass, "
                "common average reference, Geneva channel order"
            ),
            "original_channel_names": list(EEG_CHANNELS),
        },
    )
    names, types, units, original = (list(c) for c in zip(*PERIPHERAL_CHANNELS))
    peripheral = StreamInfo(
        name=PERIPHERAL_STREAM,
        channel_names=names,
        channel_types=types,
        units=units,
        nominal_rate=RATE,
        stream_type="Physio",
        source=source,
        description={
            **common,
            "filters": {"highpass": None, "lowpass": None},
            "preprocessing": "DEAP: downsampled to 128 Hz only",
            "original_channel_names": original,
            "units_note": (
                "EOG and EMG in uV as BioSemi records them (the DEAP readme names no unit); "
                "GSR in ohm as the readme says; respiration, plethysmograph and temperature "
                "units are not documented (a.u.)"
            ),
        },
    )
    return eeg, peripheral


def check_new_output(out: str | Path) -> Path:
    """``out`` if a new session file can be written there (``.h5``, not existing), else raise.

    The writer's own checks, run before a large input is read.
    """
    from data_schema.writer import check_new_session_path, check_session_name

    return check_new_session_path(check_session_name(out))


def write_deap_session(
    participant: DeapParticipant,
    out: str | Path,
    *,
    participant_id: str,
    progress: Progress | None = None,
    t0: float = T0,
    gap: float = GAP_S,
) -> Path:
    """Write ``participant`` as a new session file ``out`` (never overwritten).

    Nothing is left at ``out`` when writing fails or is interrupted.
    """
    from data_schema.writer import SessionWriter

    if gap < RATING_S:
        raise ValueError(f"gap {gap} s is shorter than the rating phase ({RATING_S} s)")
    out = check_new_output(out)
    eeg_info, peri_info = _stream_infos(participant, gap)
    n, n_trials = participant.n_samples, participant.n_trials
    total = 2 * n * n_trials
    starts = trial_starts(n_trials, n, t0=t0, gap=gap)
    number = f", DEAP participant {participant.number}" if participant.number else ""
    writer = SessionWriter(
        out,
        participant_id=participant_id,
        protocol=BLOCK,
        notes=f"imported from {participant.file_name} ({IMPORT_FORMAT}{number})",
        attrs={"imported_from": participant.file_name, "import_format": IMPORT_FORMAT},
    )
    clock = {
        "clock": "deap-trials",
        "meaning": (
            f"trial k's first sample at t0 + k * ({n} / {RATE:g} + gap) s; DEAP keeps no "
            "recording times, so the gaps between trials are not the real ones"
        ),
        "t0": t0,
        "gap_s": gap,
        "first_sample_utc": None,
    }
    try:
        writer.add_stream("eeg", eeg_info, clock=clock)
        writer.add_stream(PERIPHERAL_STREAM, peri_info, clock=clock)
        done = 0
        for k in range(n_trials):
            ts = trial_timestamps(float(starts[k]), n)
            trial = participant.data[k]
            writer.append("eeg", trial[: len(EEG_CHANNELS)].T, ts)
            writer.append(PERIPHERAL_STREAM, trial[len(EEG_CHANNELS) :].T, ts)
            done += 2 * n
            if progress is not None:
                progress(done, total)
        writer.add_events(
            deap_events(
                participant.labels,
                n,
                streams=("eeg", PERIPHERAL_STREAM),
                t0=t0,
                gap=gap,
            )
        )
        writer.close()
    except BaseException:
        # A failed import leaves nothing: the writer created the file ("x"), so it is ours.
        try:
            writer.close()
        finally:
            out.unlink(missing_ok=True)
        raise
    return out


def import_deap(
    path: str | Path,
    out: str | Path,
    *,
    participant_id: str,
    progress: Progress | None = None,
) -> Path:
    """Read a DEAP ``sNN.dat`` and write it as a new session file ``out``.

    Parameters
    ----------
    path
        ``data_preprocessed_python/sNN.dat``.
    out
        The new ``.h5`` file; never overwritten, nothing left there when the import fails.
    participant_id
        The pseudonym stored in the file (required: DEAP's numbers are not recall-lab
        pseudonyms, the caller decides, e.g. ``DEAP07``).
    progress
        Called with ``(rows_done, rows_total)`` as samples are written.

    Returns
    -------
    Path
        ``out``.
    """
    from data_schema.writer import check_pseudonym

    try:
        check_pseudonym(participant_id)
    except ValueError as exc:
        raise SessionFileError(str(exc)) from None
    out = check_new_output(out)
    participant = read_deap_file(path)
    return write_deap_session(participant, out, participant_id=participant_id, progress=progress)


# ----------------------------------------------------------------------------- folders
def deap_files(folder: str | Path) -> list[tuple[int, Path]]:
    """``(participant number, file)`` of the ``sNN.dat`` files in ``folder``, by number."""
    f = Path(folder)
    if not f.is_dir():
        return []
    found = []
    for p in f.iterdir():
        m = FILE_NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def import_deap_folder(
    folder: str | Path,
    out_dir: str | Path,
    prefix: str,
    *,
    progress: Progress | None = None,
) -> list[Path]:
    """Import every ``sNN.dat`` of a ``data_preprocessed_python`` folder, one session each.

    Participant NN gets the pseudonym ``<prefix>NN`` and the file ``out_dir/<prefix>NN.h5``.
    All or nothing: every output name is checked before anything is read, and when one file
    cannot be imported (or the import is interrupted) the sessions written so far by this call
    are removed, so a rerun after the fix starts clean. ``out_dir`` is created if missing.

    Parameters
    ----------
    progress
        Called with ``(files_done, files_total)`` after each file.

    Returns
    -------
    list of Path
        The sessions written, by participant number.
    """
    from data_schema.writer import check_pseudonym, check_writable_folder

    src = Path(folder)
    out_dir = Path(out_dir)
    files = deap_files(src)
    if not files:
        raise DeapFileError(f"{src}: no DEAP participant files (s01.dat .. s32.dat) in this folder")
    if out_dir.suffix.lower() in (".h5", ".hdf5"):
        raise SessionFileError(
            f"--out {out_dir}: a DEAP folder becomes one session per participant; give a "
            "folder for them, e.g. --out sessions"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise SessionFileError(f"--out {out_dir} is a file; give a folder for the sessions")
    if out_dir.exists() and out_dir.resolve() == src.resolve():
        raise SessionFileError(
            "--out must be another folder than the DEAP folder (inputs are never changed)"
        )
    targets = []
    for number, path in files:
        pid = f"{prefix}{number:02d}"
        try:
            check_pseudonym(pid)
        except ValueError as exc:
            raise SessionFileError(f"--participant {prefix!r} as a prefix: {exc}") from None
        target = out_dir / f"{pid}.h5"
        if target.exists():
            raise SessionFileError(
                f"{target} already exists; recall-lab never overwrites a file: choose another "
                "--out folder"
            )
        targets.append((pid, path, target))
    check_writable_folder(out_dir)
    made_dir = not out_dir.exists()
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, (pid, path, target) in enumerate(targets, 1):
            written.append(import_deap(path, target, participant_id=pid))
            if progress is not None:
                progress(i, len(targets))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        if made_dir:
            try:
                os.rmdir(out_dir)
            except OSError:
                pass  # not empty: something else was put there meanwhile
        raise
    return written


__all__ = [
    "DeapFileError",
    "DeapParticipant",
    "deap_events",
    "deap_files",
    "import_deap",
    "import_deap_folder",
    "read_deap_file",
    "write_deap_session",
]
