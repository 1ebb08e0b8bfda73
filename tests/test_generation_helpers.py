"""Session files for the generation tests, written with the real SessionWriter."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from data_schema.types import Event, StreamInfo
from data_schema.writer import SessionWriter

T0 = 1000.0  # LSL seconds at the start of the recording
LONG_DESCRIPTION = (
    "It was the summer after my first year at university and we drove to the coast before "
    "sunrise, the four of us squeezed into the old car with the broken radio, singing anyway, "
    "and when we arrived the beach was empty and the water was cold and silver and my "
    "grandmother's blue umbrella flapped in the wind while we ate peaches on the sand and "
    "talked about everything we were going to become."
)


def sketch_png(width: int = 160, height: int = 120) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(im)
    d.line((10, 100, 150, 100), fill="black", width=3)  # horizon
    d.ellipse((60, 20, 100, 60), outline="black", width=3)  # sun
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def hum(seconds: float = 6.0, rate: int = 16000) -> np.ndarray:
    """A hummed-like melody: a few notes of a major scale."""
    t = np.arange(int(seconds * rate)) / rate
    notes = 261.63 * 2 ** (np.array([0, 2, 4, 5, 7, 5, 4, 2]) / 12)
    f = notes[(t / (seconds / len(notes))).astype(int).clip(0, len(notes) - 1)]
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / rate)).astype(np.float32)


def press(w: SessionWriter, t: float, valence: str, hold: float = 0.3) -> None:
    key = {"positive": "p", "negative": "n", "neutral": "space"}[valence]
    for label, ts in (("key_down", t), ("key_up", t + hold)):
        w.add_event(
            Event(
                T0 + ts,
                "keyboard",
                label,
                json.dumps({"key": key, "valence": valence, "auto_repeat": False}),
                0.0,
            )
        )


def write_session(
    path: Path,
    *,
    recall: float = 16.0,
    description: str | None = LONG_DESCRIPTION,
    sketch: bool = True,
    melody: bool = True,
    presses: bool = True,
    memories: tuple[str, ...] = ("m1",),
    participant: str = "P001",
) -> Path:
    """A session with EEG, protocol phases and, per memory, the requested participant inputs.

    Valence keys: positive presses during the first third of each recall, negative presses
    during the last third, nothing in between (neutral).
    """
    w = SessionWriter(path, participant_id=participant, protocol="test")
    info = StreamInfo(
        name="eeg",
        channel_names=["Fz", "Cz"],
        channel_types=["eeg", "eeg"],
        units=["uV", "uV"],
        nominal_rate=50.0,
        stream_type="EEG",
        source="test",
        description={},
    )
    w.add_stream("eeg", info)
    span = len(memories) * (recall + 2) + 2
    ts = T0 + np.arange(int(span * 50)) / 50
    w.append("eeg", np.random.default_rng(0).normal(size=(len(ts), 2)), ts)
    start = 1.0
    for k, mid in enumerate(memories):
        w.memory_group(mid, cue=f"cue {k}", index=k)
        for label, t in (("phase_start", start), ("phase_end", start + recall)):
            w.add_event(
                Event(
                    T0 + t,
                    "protocol",
                    label,
                    json.dumps({"phase": f"recall-{mid}", "kind": "recall", "memory": mid}),
                    0.0,
                )
            )
        if presses:
            third = recall / 3
            for t in np.arange(start + 0.2, start + third - 0.5, 1.0):
                press(w, t, "positive")
            for t in np.arange(start + 2 * third + 0.2, start + recall - 0.5, 1.0):
                press(w, t, "negative")
        if description is not None:
            w.set_description(mid, description, T0 + start + recall + 0.5)
        if sketch:
            w.set_sketch_image(mid, sketch_png(), T0 + start + recall + 1, width=160, height=120)
        if melody:
            w.append_melody(mid, hum(), sample_rate=16000, origin="microphone")
        start += recall + 2
    w.close()
    return path


def decode_frames(path: Path, size: int = 64, fps: float = 8) -> np.ndarray:
    """Every video frame of a square MP4 as uint8 (n, size, size, 3), decoded by ffmpeg."""
    import subprocess

    from generation.video import ffmpeg_exe, probe_durations

    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    n = probe_durations(path)["frames"]
    return np.frombuffer(out, np.uint8).reshape(n, size, size, 3)


def inside_segments(manifest: dict, fps: float = 8, margin: float = 0.3) -> list[np.ndarray]:
    """Per segment, indices of video frames well inside it (away from the crossfades)."""
    t = (np.arange(round(manifest["total_seconds"] * fps)) + 0.5) / fps
    return [
        np.flatnonzero((t > s["start"] + margin) & (t < s["end"] - margin))
        for s in manifest["segments"]
    ]


def motion(frames: np.ndarray, idx: np.ndarray) -> float:
    """Mean absolute change (0..255) between consecutive frames at ``idx``."""
    f = frames[idx].astype(np.float32)
    return float(np.abs(np.diff(f, axis=0)).mean())
