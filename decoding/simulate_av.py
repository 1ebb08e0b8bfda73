"""A simulated participant's voice and face, following the same true affect as the EEG.

``recall-lab simulate --voice --face`` adds to the simulated session what
``recall-lab record --microphone ... --camera ...`` records: a microphone stream ``audio``
(16 kHz: a hummed voice whose pitch and loudness rise with valence, with breath noise) and a
camera ``video`` (JPEG frames at ``fps``: a drawn face whose mouth curves up with positive and
down with negative valence, with head motion and sensor noise). Both follow the true affect
scaled by the session's ``effect`` (0: they carry none), so the fusion decoders can be
checked against the truth like the EEG decoders.
"""

from __future__ import annotations

import io

import numpy as np

from data_schema.types import StreamInfo, VideoInfo

VOICE_RATE = 16000


def voice(state: np.ndarray, sfreq: float, effect: float, rng: np.random.Generator) -> np.ndarray:
    """Mono voice ``[samples x 1]`` float32 at :data:`VOICE_RATE` for the true valence
    ``state`` sampled at ``sfreq``."""
    n = round(len(state) / sfreq * VOICE_RATE)
    v = np.interp(np.arange(n) / VOICE_RATE, np.arange(len(state)) / sfreq, state)
    f0 = 150.0 * (1 + 0.25 * effect * v)  # Hz
    phase = 2 * np.pi * np.cumsum(f0) / VOICE_RATE
    amp = 0.15 * (1 + 0.5 * effect * v)
    # syllables: a 4 Hz envelope with pauses
    env = np.clip(np.sin(2 * np.pi * 4 * np.arange(n) / VOICE_RATE), 0, None) ** 2
    x = amp * env * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase))
    x += 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)[:, None]


def face_frame(valence: float, effect: float, t: float, rng: np.random.Generator) -> bytes:
    """One 96 x 96 JPEG of a drawn face; the mouth curves with ``effect * valence``."""
    from PIL import Image, ImageDraw

    size = 96
    img = Image.new("RGB", (size, size), (90, 90, 100))
    d = ImageDraw.Draw(img)
    dx = 3 * np.sin(2 * np.pi * 0.3 * t)  # the head moves a little
    cx, cy = size / 2 + dx, size / 2
    d.ellipse([cx - 30, cy - 36, cx + 30, cy + 36], fill=(220, 180, 150))
    for ex in (-12, 12):
        d.ellipse([cx + ex - 4, cy - 14, cx + ex + 4, cy - 8], fill=(40, 40, 40))
    curve = 10 * effect * valence  # pixels: up at the corners when positive
    xs = np.linspace(-14, 14, 15)
    ys = cy + 16 - curve * (xs / 14) ** 2 + curve / 2
    d.line(list(zip((cx + xs).tolist(), ys.tolist())), fill=(120, 30, 30), width=3)
    arr = np.asarray(img, np.float32) + rng.normal(0, 4, (size, size, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def write_voice_and_face(
    writer,
    state: np.ndarray,
    sfreq: float,
    t0: float,
    effect: float,
    rng: np.random.Generator,
    *,
    with_voice: bool = True,
    with_face: bool = True,
    fps: float = 10.0,
) -> None:
    """Add the ``audio`` stream and the ``video`` frames to an open session ``writer``; the
    recording starts at LSL time ``t0`` and ``state`` is the true valence per EEG sample."""
    clock = {"clock": "lsl", "method": "recall-lab simulate"}
    if with_voice:
        x = voice(state, sfreq, effect, rng)
        info = StreamInfo(
            "audio", ["mic"], ["misc"], ["a.u."], float(VOICE_RATE), "Audio", "simulate", {}
        )
        writer.add_stream("audio", info, clock=clock)
        ts = t0 + np.arange(len(x)) / VOICE_RATE
        step = VOICE_RATE * 10
        for i in range(0, len(x), step):
            writer.append("audio", x[i : i + step], ts[i : i + step])
    if with_face:
        writer.add_video_stream("video", VideoInfo("video", 96, 96, fps, "simulate"), clock=clock)
        seconds = len(state) / sfreq
        times = np.arange(0, seconds, 1 / fps)
        frames = [
            face_frame(float(state[min(int(t * sfreq), len(state) - 1)]), effect, t, rng)
            for t in times
        ]
        for i in range(0, len(frames), 100):
            writer.append_frames("video", frames[i : i + 100], t0 + times[i : i + 100])
