"""The participant's voice and face for each EEG window, for the multimodal fusion decoders.

``recall-lab record --camera ... --microphone ...`` keeps the face as JPEG frames
(``session.videos``) and the voice as an ordinary stream (``audio``), both on the LSL clock.
For every analysis window ``[start, start + length)`` this module cuts the voice (resampled
to the audio branch's 16 kHz) and picks ``frames_per_window`` frames evenly spread over the
window, resized to a square. A window the microphone or the camera did not cover gets a NaN
audio row or ``video_present`` False: the fusion model then uses its "missing" token for that
modality, and still predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError

AUDIO_RATE = 16000


def _voice(session: Any, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The session's voice as mono 16 kHz samples and their LSL times (None without it)."""
    from scipy.signal import resample_poly

    stream = session.streams.get(name)
    if stream is None or stream.n_samples < 2:
        return None
    rate = float(stream.info.nominal_rate) or float(stream.effective_rate)
    mono = np.asarray(stream.data, np.float32).mean(axis=1)
    fr = Fraction(AUDIO_RATE / rate).limit_denominator(1000)
    audio = resample_poly(mono, fr.numerator, fr.denominator).astype(np.float32)
    times = float(stream.timestamps[0]) + np.arange(audio.size) / AUDIO_RATE
    return audio, times


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def voice_and_face(
    session: Any,
    starts: np.ndarray,
    length: float,
    *,
    audio_stream: str = "audio",
    video_stream: str = "video",
    frames: int = 4,
    size: int = 112,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """For windows starting at ``starts`` (LSL s), ``length`` s long: voice ``[n x
    length*16k]`` (NaN rows where not recorded), frames ``[n x frames x size x size x 3]``
    uint8, ``video_present`` ``[n]``, and notes."""
    n = len(starts)
    n_audio = round(length * AUDIO_RATE)
    audio = np.full((n, n_audio), np.nan, np.float32)
    video = np.zeros((n, frames, size, size, 3), np.uint8)
    present = np.zeros(n, bool)
    notes: list[str] = []
    voice = _voice(session, audio_stream)
    if voice is None:
        notes.append(f"no {audio_stream!r} stream (microphone): the voice is missing throughout")
    else:
        samples, times = voice
        first = np.searchsorted(times, starts - 0.5 / AUDIO_RATE)
        for i, k in enumerate(first):
            seg = samples[k : k + n_audio]
            # covered: the stream has the whole window, without a gap inside it
            if seg.size == n_audio and times[k + n_audio - 1] - starts[i] < length + 0.05:
                audio[i] = seg
        if not np.isfinite(audio).any():
            notes.append(f"the {audio_stream!r} stream covers none of the windows")
    cam = session.videos.get(video_stream)
    if cam is None or cam.n_frames == 0:
        notes.append(f"no {video_stream!r} video (camera): the face is missing throughout")
        return audio, video, present, notes
    ts = cam.timestamps
    lo = np.searchsorted(ts, starts)
    hi = np.searchsorted(ts, starts + length)
    for i in range(n):
        if hi[i] <= lo[i]:
            continue
        pick = np.unique(np.linspace(lo[i], hi[i] - 1, frames).round().astype(int))
        jpegs = cam.jpegs(int(pick[0]), int(pick[-1]) + 1)
        chosen = [jpegs[j - pick[0]] for j in pick]
        from data_schema.reader import decode_jpeg

        imgs = [_resize(decode_jpeg(b), size) for b in chosen]
        while len(imgs) < frames:  # fewer frames than asked in the window: repeat the last
            imgs.append(imgs[-1])
        video[i] = np.stack(imgs[:frames])
        present[i] = True
    if not present.any():
        notes.append(f"the {video_stream!r} video covers none of the windows")
    return audio, video, present, notes


def add_voice_and_face(ds: Any, sessions: Sequence[Any], cfg: Any) -> list[str]:
    """Fill ``ds.side`` with ``audio``, ``video`` and ``video_present`` for every window of
    ``sessions`` (the windows of :func:`decoding.pipeline.build_dataset`, in order)."""
    from data_schema.reader import read_session

    mc, fc = cfg.multimodal, cfg.fusion
    length = cfg.windows.length
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    notes: list[str] = []
    for s in sessions:
        session = read_session(s.path)
        starts = np.asarray(s.times, np.float64) - length / 2
        a, v, p, n = voice_and_face(
            session,
            starts,
            length,
            audio_stream=mc.audio_stream,
            video_stream=mc.video_stream,
            frames=fc.frames_per_window,
            size=mc.frame_size,
        )
        parts.append((a, v, p))
        notes += [f"{s.path.name}: {x}" for x in n]
    ds.side["audio"] = np.concatenate([p[0] for p in parts])
    ds.side["video"] = np.concatenate([p[1] for p in parts])
    ds.side["video_present"] = np.concatenate([p[2] for p in parts])
    wanted = set(cfg.decoders)
    if "audio_only" in wanted and not np.isfinite(ds.side["audio"]).any():
        raise RecallLabError(
            "decoders: audio_only needs the participant's voice, but no window has it (record "
            "with --microphone)"
        )
    if "video_only" in wanted and not ds.side["video_present"].any():
        raise RecallLabError(
            "decoders: video_only needs the participant's face, but no window has it (record "
            "with --camera)"
        )
    return notes
