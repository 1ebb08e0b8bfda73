"""The participant's face video and voice beside a BIDS EEG export (``--format bids``).

BIDS has no modality for audio or video of the participant yet, so the files go where BIDS
lets a dataset keep extra files: the subject's (and session's) ``beh/`` folder, named like
BIDS files, and listed in the dataset's ``.bidsignore`` so the validator skips them.

Per camera ``/videos/<name>``:

- ``<base>_video.mp4``: H.264 (yuv420p), constant frame rate at the camera's nominal rate
  (the measured one when the camera promised none), one MP4 frame per recorded frame, in
  order; nothing is dropped or duplicated, so the MP4's frame ``i`` is the session's frame
  ``i``. A CFR file plays at the nominal rate: where the camera dropped frames it runs ahead
  of the recording, which is why the timing table exists.
- ``<base>_frames.tsv``: ``frame``, ``onset`` (seconds from the EEG's first sample, the
  zero of the EEG's ``events.tsv``) and ``lsl_timestamp`` of every frame: the recorded times.
- ``<base>_video.json``: frame rate, counts, size, codec, ``StartTime`` (first frame minus the
  EEG's first sample, as BIDS physio sidecars state it), the LSL times, the clock mapping.

Per audio stream (``stream_type`` ``Audio``, e.g. ``/streams/audio``):

- ``<base>_audio.wav``: the samples exactly as stored, 32-bit float WAV (full scale -1..1),
  at the stream's nominal rate.
- ``<base>_audio.json``: rate, channels, ``SampleCount``, ``StartTime``, the LSL times and the
  breaks in the timestamps (the WAV is contiguous, as the exported EEG is).

``<base>`` is ``sub-<label>[_ses-<label>]_task-<label>[_run-<index>]`` as the EEG's, plus
``_recording-<name>`` unless the video is called ``video`` or the audio stream ``audio``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from data_schema.errors import SessionExistsError, SessionFileError
from data_schema.reader import Session, Stream, VideoStream

#: Lines recall-lab keeps in ``.bidsignore`` (gitignore patterns, as the validator reads them).
BIDSIGNORE = (
    "*_video.mp4",
    "*_video.json",
    "*_frames.tsv",
    "*_audio.wav",
    "*_audio.json",
)
_BIDSIGNORE_HEAD = (
    "# recall-lab: the participant's face video and voice (no BIDS modality for them yet; "
    "beh/ *_video.mp4, *_frames.tsv, *_audio.wav and their .json sidecars)"
)

#: Frames decoded per read of the session file.
_BATCH = 64

Progress = Callable[[str], None]


def media_in(session: Session, eeg_stream: str = "eeg") -> tuple[list[str], list[str]]:
    """Names of the videos with frames and of the audio streams with samples to export."""
    videos = [n for n, v in session.videos.items() if v.n_frames]
    audio = [
        n
        for n, s in session.streams.items()
        if n != eeg_stream and (s.info.stream_type or "").lower() == "audio" and s.n_samples
    ]
    return videos, audio


def _label(name: str, default: str) -> str:
    if name == default:
        return ""
    label = re.sub(r"[^A-Za-z0-9]", "", name)
    return f"_recording-{label or 'x'}"


def export_media(
    session: Session,
    root: Path,
    base: str,
    folder: Path,
    *,
    task: str,
    eeg_stream: str = "eeg",
    progress: Progress | None = None,
) -> list[Path]:
    """Write every video and audio stream of ``session`` into ``folder`` (a ``beh/``).

    ``base`` is the BIDS name stem without suffix (``sub-P01_task-recall``); timings are
    relative to the first sample of ``eeg_stream``. Returns the files written, ``.bidsignore``
    included when it was created or extended. A session without video and audio writes
    nothing.
    """
    say = progress or (lambda _msg: None)
    plans = plan_media(session, base, folder, eeg_stream)
    if not plans:
        return []
    eeg_t0 = float(session.streams[eeg_stream].timestamps[0])
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for kind, name, stem in plans:
        if kind == "video":
            say(f"writing video {name!r} as MP4")
            files += write_video(session.videos[name], folder, stem, eeg_t0, task=task)
        else:
            say(f"writing audio {name!r} as WAV")
            files += write_audio(session.streams[name], name, folder, stem, eeg_t0, task=task)
    ignore = _update_bidsignore(root)
    if ignore is not None:
        files.append(ignore)
    return files


def plan_media(
    session: Session, base: str, folder: Path, eeg_stream: str = "eeg"
) -> list[tuple[str, str, str]]:
    """``(kind, name, stem)`` of each file set :func:`export_media` writes.

    Raises before anything is written when a name clashes or a target file exists.
    """
    videos, audio = media_in(session, eeg_stream)
    plans = [("video", n, base + _label(n, "video")) for n in videos]
    plans += [("audio", n, base + _label(n, "audio")) for n in audio]
    stems = [(kind, stem) for kind, _, stem in plans]
    if len(set(stems)) != len(stems):
        raise SessionFileError(
            "two videos or audio streams map to the same BIDS name (names differ only in "
            f"punctuation): {', '.join(n for _, n, _ in plans)}"
        )
    for kind, _, stem in plans:
        ends = ("_video.mp4", "_video.json", "_frames.tsv")
        for end in ends if kind == "video" else ("_audio.wav", "_audio.json"):
            if (folder / (stem + end)).exists():
                raise SessionExistsError(
                    f"{folder / (stem + end)} already exists; recall-lab never overwrites: "
                    "choose another --out or --task"
                )
    return plans


def _update_bidsignore(root: Path) -> Path | None:
    path = root / ".bidsignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [p for p in BIDSIGNORE if p not in {line.strip() for line in lines}]
    if not missing:
        return None
    if lines and lines[-1].strip():
        lines.append("")
    lines += [_BIDSIGNORE_HEAD, *missing]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- video
def frame_rate(video: VideoStream) -> Fraction:
    """The MP4's constant frame rate: the nominal rate, else the measured one (fps)."""
    rate = float(video.nominal_rate)
    if not rate > 0 and video.n_frames > 1:
        span = float(video.timestamps[-1] - video.timestamps[0])
        rate = (video.n_frames - 1) / span if span > 0 else 0.0
    if not rate > 0 or not np.isfinite(rate):
        rate = 1.0
    return Fraction(rate).limit_denominator(1001)


def write_video(
    video: VideoStream, folder: Path, stem: str, eeg_t0: float, *, task: str
) -> list[Path]:
    """``<stem>_video.mp4``, ``<stem>_frames.tsv`` and ``<stem>_video.json`` for one camera."""
    import av
    from PIL import Image

    from data_schema.reader import decode_jpeg

    mp4 = folder / f"{stem}_video.mp4"
    table = folder / f"{stem}_frames.tsv"
    sidecar = folder / f"{stem}_video.json"
    fps = frame_rate(video)
    # yuv420p needs even sizes: an odd last row or column is cropped.
    width, height = video.width - video.width % 2, video.height - video.height % 2
    if width < 2 or height < 2:
        raise SessionFileError(f"video {video.name!r}: {video.width}x{video.height} is too small")
    n = video.n_frames
    undecodable = resized = 0
    previous = np.zeros((height, width, 3), dtype=np.uint8)
    container = av.open(str(mp4), mode="w")
    try:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for a in range(0, n, _BATCH):
            for k, data in enumerate(video.jpegs(a, min(n, a + _BATCH))):
                try:
                    rgb = decode_jpeg(data)
                except Exception:  # a damaged frame: the previous one stands in for it
                    rgb, undecodable = previous, undecodable + 1
                if rgb.shape[0] < height or rgb.shape[1] < width:
                    rgb = np.asarray(Image.fromarray(rgb).resize((width, height)))
                    resized += 1
                rgb = np.ascontiguousarray(rgb[:height, :width, :3])
                previous = rgb
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = a + k
                frame.time_base = 1 / fps
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    finally:
        container.close()

    ts = video.timestamps.astype(np.float64)
    onset = ts - eeg_t0
    rows = [f"{i}\t{o:.6f}\t{t:.6f}" for i, (o, t) in enumerate(zip(onset, ts))]
    table.write_text("frame\tonset\tlsl_timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    diffs = np.diff(ts) if n > 1 else np.zeros(0)
    side = {
        "TaskName": task,
        "Description": (
            f"The participant's face: recall-lab video {video.name!r} ({video.source}) "
            "recorded beside the EEG on the same LSL clock. One MP4 frame per recorded frame, "
            "in order, at a constant frame rate; the recorded time of every frame is in "
            "FrameTimesFile (onset in seconds from the EEG's first sample)."
        ),
        "RecordingName": video.name,
        "Codec": "H.264",
        "PixelFormat": "yuv420p",
        "FrameRate": float(fps),
        "NominalFrameRate": float(video.nominal_rate),
        "MeasuredFrameRate": float((n - 1) / (ts[-1] - ts[0])) if n > 1 and ts[-1] > ts[0] else 0,
        "FrameCount": n,
        "Width": width,
        "Height": height,
        "RecordedWidth": video.width,
        "RecordedHeight": video.height,
        "StartTime": float(onset[0]),
        "OffsetToEEGFirstSample": float(onset[0]),
        "LSLStartTime": float(ts[0]),
        "EEGFirstSampleLSLTime": float(eeg_t0),
        "RecordedDuration": float(ts[-1] - ts[0] + 1 / fps),
        "FileDuration": float(n / fps),
        "LongestFrameInterval": float(diffs.max()) if diffs.size else 0.0,
        "FrameTimesFile": table.name,
        "FrameTimesColumns": {
            "frame": "frame index in the MP4 (0-based) and in the session",
            "onset": "seconds from the EEG's first sample (the zero of events.tsv)",
            "lsl_timestamp": "the frame's capture time on the LSL clock (seconds)",
        },
        "ClockMapping": video.clock_mapping,
        "Source": video.source,
        "UndecodableFrames": undecodable,
        "ResizedFrames": resized,
    }
    sidecar.write_text(json.dumps(side, indent=4, ensure_ascii=False, default=str))
    return [mp4, table, sidecar]


# ----------------------------------------------------------------------------- audio
def write_audio(
    stream: Stream, name: str, folder: Path, stem: str, eeg_t0: float, *, task: str
) -> list[Path]:
    """``<stem>_audio.wav`` (float32) and ``<stem>_audio.json`` for one audio stream."""
    from scipy.io import wavfile

    from data_schema.summary import gap_threshold

    wav = folder / f"{stem}_audio.wav"
    sidecar = folder / f"{stem}_audio.json"
    info = stream.info
    rate = float(info.nominal_rate) or stream.effective_rate
    if not rate > 0:
        raise SessionFileError(f"audio stream {name!r} has no sample rate to write a WAV at")
    wav_rate = round(rate)
    data = np.ascontiguousarray(stream.data, dtype=np.float32)
    wavfile.write(wav, wav_rate, data if data.shape[1] > 1 else data[:, 0])
    ts = stream.timestamps.astype(np.float64)
    diffs = np.diff(ts)
    breaks = [
        {
            "sample": int(i + 1),
            "onset": float(ts[i + 1] - eeg_t0),
            "missing_seconds": float(diffs[i] - 1.0 / rate),
        }
        for i in np.flatnonzero(diffs > gap_threshold(rate))
    ]
    side = {
        "TaskName": task,
        "Description": (
            f"The participant's voice: recall-lab stream {name!r} ({info.source}) recorded "
            "beside the EEG on the same LSL clock; samples as stored (float32, full scale "
            "-1..1), contiguous: breaks in the recording are listed in Discontinuities."
        ),
        "RecordingName": name,
        "SamplingFrequency": wav_rate,
        "NominalSamplingFrequency": float(info.nominal_rate),
        "MeasuredSamplingFrequency": stream.effective_rate,
        "SampleFormat": "IEEE float32",
        "Channels": list(info.channel_names),
        "ChannelCount": info.n_channels,
        "SampleCount": stream.n_samples,
        "StartTime": float(ts[0] - eeg_t0),
        "OffsetToEEGFirstSample": float(ts[0] - eeg_t0),
        "LSLStartTime": float(ts[0]),
        "EEGFirstSampleLSLTime": float(eeg_t0),
        "RecordedDuration": float(ts[-1] - ts[0] + 1 / rate),
        "FileDuration": float(stream.n_samples / wav_rate),
        "Discontinuities": breaks,
        "ClockMapping": stream.clock_mapping,
        "Source": info.source,
    }
    sidecar.write_text(json.dumps(side, indent=4, ensure_ascii=False, default=str))
    return [wav, sidecar]
