"""Import one participant of the public EAV dataset (EEG, audio and video of emotional
conversations; Lee et al., Scientific Data 2024) as a recall-lab session.

Layout of a participant's folder (from the dataset's description and the authors' loaders,
nubcico/EAV)::

    subjectNN/EEG/subjectNN_eeg.mat        key "seg1" (or "seg"): samples x 30 x trials, 500 Hz
    subjectNN/EEG/subjectNN_eeg_label.mat  key "label": 10 x trials, one-hot
    subjectNN/Video/III_Trial_TT_<Listening|Speaking>_<Emotion>.mp4   one per trial, 30 fps
    subjectNN/Audio/III_Trial_TT_Speaking_<Emotion>_Aud.wav           speaking trials only

The ten label classes are five emotions x two tasks: class ``2e + 1`` is listening and
``2e`` speaking with emotion ``e`` in the order neutral, sadness, anger, happiness,
calmness (the authors' loaders select the odd classes as listening). The video's file name
also names the task and the emotion; the two must agree, or the import stops.

The trials (20 s each) are written end to end with ``gap`` seconds between them, marked as
gaps, like DEAP's (the dataset keeps no recording times). Each trial is a protocol phase
``{"kind": "listening"|"speaking", "trial": k, "emotion": ..., "valence": -1|0|1}``; valence
is the emotion's side (happiness and calmness positive, sadness and anger negative, neutral
0), so ``recall-lab decode --preset eav`` labels windows by it (``labels.source:
trial_labels``). ``recall-lab decode --preset eav_emotion`` (``labels.target: emotion``)
labels them by the marker's ``emotion`` instead, the paper's five classes (codes 0-4 in the
order of :data:`EMOTIONS`, ``decoding.labels.EMOTION_CLASSES``), and reports five-class
accuracy, balanced accuracy, 5 x 5 confusion matrices and their permutation chance, to set
beside Yin et al. (arXiv 2411.00822). Video frames are kept every ``video_step``-th
frame (default every 6th: 5 fps), scaled to at most ``video_size`` pixels, as JPEG; the
voice of speaking trials is the stream ``audio``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_schema.errors import SessionFileError
from data_schema.types import Event, StreamInfo, VideoInfo

RATE = 500.0
EMOTIONS = ("neutral", "sadness", "anger", "happiness", "calmness")
VALENCE = {"neutral": 0, "sadness": -1, "anger": -1, "happiness": 1, "calmness": 1}
IMPORT_FORMAT = "eav"
GAP_S = 5.0
T0 = 1000.0
VIDEO_RE = re.compile(r"^(\d+)_Trial_(\d+)_(Listening|Speaking)_([A-Za-z]+)\.mp4$")
AUDIO_RE = re.compile(r"^(\d+)_Trial_(\d+)_Speaking_([A-Za-z]+)_Aud\.wav$")

Progress = Callable[[int, int], None]


class EavFileError(SessionFileError):
    """An EAV participant folder that is missing parts or does not follow the layout."""


@dataclass
class EavParticipant:
    """One participant's EAV recordings."""

    folder: Path
    eeg: np.ndarray  # trials x samples x channels, microvolts as stored
    emotion: list[str]  # per trial
    task: list[str]  # "listening" / "speaking" per trial
    videos: dict[int, Path]  # trial (0-based) -> mp4
    audio: dict[int, Path]  # trial (0-based) -> wav

    @property
    def n_trials(self) -> int:
        return int(self.eeg.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.eeg.shape[1])


def _loadmat(path: Path, what: str) -> dict:
    import scipy.io

    if not path.is_file():
        raise EavFileError(f"no {what} file {path.name} in {path.parent}")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise EavFileError(
            f"{path}: a MATLAB v7.3 file; save it as v7 or earlier (scipy reads those)"
        ) from None
    except Exception as exc:
        raise EavFileError(f"{path}: not a MATLAB file ({exc})") from None


def read_eav_participant(folder: str | Path) -> EavParticipant:
    """Read and check a ``subjectNN`` folder (one line per problem found)."""
    root = Path(folder)
    if not root.is_dir():
        raise EavFileError(f"{root} is not a folder; give an EAV subjectNN folder")
    name = root.name
    mat = _loadmat(root / "EEG" / f"{name}_eeg.mat", "EEG")
    seg = mat.get("seg1") if "seg1" in mat else mat.get("seg")
    if seg is None or np.ndim(seg) != 3:
        raise EavFileError(f"{name}_eeg.mat: no 3-D 'seg1' or 'seg' array (samples x 30 x trials)")
    seg = np.asarray(seg)
    if not np.issubdtype(seg.dtype, np.number) or not np.isfinite(seg).all():
        raise EavFileError(f"{name}_eeg.mat: the EEG holds non-numbers or non-finite values")
    samples, channels, trials = seg.shape
    if channels != 30 or samples < RATE:
        raise EavFileError(
            f"{name}_eeg.mat: EEG of shape {seg.shape}; EAV's is samples x 30 channels x trials"
        )
    lab = _loadmat(root / "EEG" / f"{name}_eeg_label.mat", "label").get("label")
    lab = None if lab is None else np.asarray(lab)
    if lab is None or lab.shape != (10, trials) or not np.isin(lab, (0, 1)).all():
        raise EavFileError(
            f"{name}_eeg_label.mat: 'label' must be one-hot 10 x {trials} (one per trial)"
        )
    if not (lab.sum(axis=0) == 1).all():
        raise EavFileError(f"{name}_eeg_label.mat: a trial has no class or several")
    cls = lab.argmax(axis=0)
    emotion = [EMOTIONS[c // 2] for c in cls]
    task = ["listening" if c % 2 else "speaking" for c in cls]
    videos: dict[int, Path] = {}
    for f in sorted((root / "Video").glob("*.mp4")):
        m = VIDEO_RE.match(f.name)
        if not m:
            continue
        k = int(m.group(1)) - 1
        if 0 <= k < trials:
            if (m.group(3).lower(), m.group(4).lower()) != (task[k], emotion[k]):
                raise EavFileError(
                    f"{f.name}: says {m.group(3)} {m.group(4)} but the EEG labels give trial "
                    f"{k + 1} as {task[k]} {emotion[k]}"
                )
            videos[k] = f
    audio: dict[int, Path] = {}
    for f in sorted((root / "Audio").glob("*.wav")):
        m = AUDIO_RE.match(f.name)
        if m and 0 <= int(m.group(1)) - 1 < trials:
            audio[int(m.group(1)) - 1] = f
    eeg = np.ascontiguousarray(seg.transpose(2, 0, 1), dtype=np.float32)
    return EavParticipant(root, eeg, emotion, task, videos, audio)


def _frames(path: Path, step: int, size: int) -> tuple[list[bytes], list[float], int, int]:
    """Every ``step``-th frame of ``path`` as JPEG (at most ``size`` px), its time in s."""
    import av

    out, times = [], []
    w = h = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i % step:
                    continue
                img = frame.to_image()
                img.thumbnail((size, size))
                w, h = img.size
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="JPEG", quality=85)
                out.append(buf.getvalue())
                t = frame.time if frame.time is not None else i / float(stream.average_rate or 30)
                times.append(float(t))
    except Exception as exc:
        raise EavFileError(f"{path}: cannot read the video ({exc})") from None
    return out, times, w, h


def write_eav_session(
    p: EavParticipant,
    out: str | Path,
    *,
    participant_id: str,
    video_step: int = 6,
    video_size: int = 224,
    progress: Progress | None = None,
    gap: float = GAP_S,
) -> Path:
    """Write ``p`` as a new session file ``out``; nothing is left there when it fails."""
    import soundfile

    from data_schema.import_deap import check_new_output
    from data_schema.writer import SessionWriter

    out = check_new_output(out)
    n, trials = p.n_samples, p.n_trials
    span = n / RATE
    starts = T0 + np.arange(trials) * (span + gap)
    clock = {
        "clock": "eav-trials",
        "meaning": f"trial k's first sample at {T0} + k * ({span:g} + gap) s; EAV keeps no "
        "recording times, so the gaps between trials are not the real ones",
        "gap_s": gap,
    }
    names = [f"EEG{c + 1:02d}" for c in range(30)]  # EAV publishes no channel names
    info = StreamInfo(
        "eeg",
        names,
        ["eeg"] * 30,
        ["uV"] * 30,
        RATE,
        "EEG",
        "eav",
        {"manufacturer": "Brain Products (BrainAmp)", "note": "channel names not published"},
    )
    writer = SessionWriter(
        out,
        participant_id=participant_id,
        protocol="eav",
        notes=f"imported from {p.folder.name} ({IMPORT_FORMAT})",
        attrs={"imported_from": p.folder.name, "import_format": IMPORT_FORMAT},
    )
    try:
        writer.add_stream("eeg", info, clock=clock)
        events: list[Event] = []
        for k in range(trials):
            ts = starts[k] + np.arange(n) / RATE
            writer.append("eeg", p.eeg[k], ts)
            marker = {"phase": f"trial-{k + 1:03d}", "kind": p.task[k], "memory": None}
            marker |= {"trial": k + 1, "emotion": p.emotion[k]}
            marker["valence"] = VALENCE[p.emotion[k]]
            value = json.dumps(marker)
            events.append(Event(float(starts[k]), "protocol", "phase_start", value))
            events.append(Event(float(ts[-1]), "protocol", "phase_end", value))
            if k < trials - 1:
                end = float(starts[k] + span)
                events.append(Event(end, "recorder", "gap_start", "eeg"))
                nxt = float(starts[k + 1])
                events.append(Event(nxt, "recorder", "gap_end", "eeg", nxt - end))
            if progress is not None:
                progress(k + 1, 2 * trials)
        if p.audio:
            rate = None
            for k in sorted(p.audio):
                try:
                    x, sr = soundfile.read(str(p.audio[k]), dtype="float32", always_2d=True)
                except Exception as exc:
                    raise EavFileError(f"{p.audio[k]}: cannot read the audio ({exc})") from None
                if rate is None:
                    rate = int(sr)
                    ainfo = StreamInfo(
                        "audio", ["mic"], ["misc"], ["a.u."], float(sr), "Audio", "eav", {}
                    )
                    writer.add_stream("audio", ainfo, clock=clock)
                elif int(sr) != rate:
                    raise EavFileError(f"{p.audio[k].name}: {sr} Hz, the others {rate} Hz")
                x = x[: int(span * sr)].mean(axis=1, keepdims=True)
                writer.append("audio", x, starts[k] + np.arange(len(x)) / sr)
                nxt = [j for j in sorted(p.audio) if j > k]
                if nxt:  # listening trials between: the voice is not recorded there
                    end = float(starts[k] + len(x) / sr)
                    t1 = float(starts[nxt[0]])
                    events.append(Event(end, "recorder", "gap_start", "audio"))
                    events.append(Event(t1, "recorder", "gap_end", "audio", t1 - end))
        if p.videos:
            first = True
            for k in sorted(p.videos):
                jpegs, times, w, h = _frames(p.videos[k], video_step, video_size)
                keep = [i for i, t in enumerate(times) if t < span]
                if first:
                    fps = 30.0 / video_step
                    writer.add_video_stream(
                        "video", VideoInfo("video", w, h, fps, "eav", "jpeg"), clock=clock
                    )
                    first = False
                writer.append_frames(
                    "video", [jpegs[i] for i in keep], starts[k] + np.asarray(times)[keep]
                )
                if progress is not None:
                    progress(trials + k + 1, 2 * trials)
        writer.add_events(events)
        writer.close()
    except BaseException:
        try:
            writer.close()
        finally:
            Path(out).unlink(missing_ok=True)
        raise
    return Path(out)


def is_eav_participant(folder: str | Path) -> bool:
    """Whether ``folder`` looks like an EAV ``subjectNN`` folder."""
    root = Path(folder)
    return root.is_dir() and (root / "EEG" / f"{root.name}_eeg.mat").is_file()


def import_eav(
    folder: str | Path,
    out: str | Path,
    *,
    participant_id: str,
    progress: Progress | None = None,
    video_step: int = 6,
    video_size: int = 224,
) -> Path:
    """Read an EAV ``subjectNN`` folder and write it as a new session file ``out``."""
    from data_schema.import_deap import check_new_output
    from data_schema.writer import check_pseudonym

    try:
        check_pseudonym(participant_id)
    except ValueError as exc:
        raise SessionFileError(str(exc)) from None
    out = check_new_output(out)
    p = read_eav_participant(folder)
    return write_eav_session(
        p,
        out,
        participant_id=participant_id,
        video_step=video_step,
        video_size=video_size,
        progress=progress,
    )
