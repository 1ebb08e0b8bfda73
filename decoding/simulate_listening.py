"""Simulated sessions with a music-listening block, and the music library they used.

``recall-lab simulate --listening`` writes a session that starts with a resting baseline, then
a listening block (each clip of a library played once, in a seeded order, then rated on the
SAM valence and arousal scales), then recall phases as :mod:`decoding.simulate` writes them.
The EEG's valence effect (frontal alpha asymmetry and frontal beta, scaled by ``effect``)
follows the clip's valence while it plays, as it follows the affect episodes during recall;
the ratings scatter around each clip's norm. The clips are synthesised: major-mode, brighter,
faster progressions for pleasant clips and minor-mode, darker, slower ones for unpleasant
clips, so an audio model hears a difference too. The events are exactly those the protocol
engine writes for a ``listening`` phase (``docs/listening.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_schema.errors import RecallLabError

CLIP_RATE = 22050


@dataclass(frozen=True)
class ListeningSettings:
    """The listening block of a simulated session.

    Parameters
    ----------
    n_clips
        Clips in the library (all are played), half pleasant and half unpleasant.
    clip_seconds
        Length of each clip.
    rating_seconds
        Time the participant takes to rate each clip.
    block
        The listening phase's id.
    """

    n_clips: int = 8
    clip_seconds: float = 20.0
    rating_seconds: float = 4.0
    block: str = "listening"

    def check(self) -> None:
        if not 2 <= self.n_clips <= 200:
            raise RecallLabError("--clips must be between 2 and 200")
        if not 3.0 <= self.clip_seconds <= 600:
            raise RecallLabError("--clip-seconds must be between 3 and 600")

    @property
    def seconds(self) -> float:
        return self.n_clips * (self.clip_seconds + self.rating_seconds)


# ---------------------------------------------------------------------- the music
_MAJOR = (0, 4, 7)
_MINOR = (0, 3, 7)


def synthesize_clip(
    valence: float, arousal: float, seconds: float, rng: np.random.Generator, sr: int = CLIP_RATE
) -> np.ndarray:
    """A mono clip (float32, -1..1) whose mode, brightness and tempo follow the norms:
    valence above 5 gives major chords and brighter timbre, below 5 minor chords and darker
    timbre; arousal sets the tempo (50-150 beats per minute) and the loudness contour."""
    n = round(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    mode = _MAJOR if valence >= 5 else _MINOR
    bpm = 50 + 100 * (arousal - 1) / 8
    beat = 60.0 / bpm
    root = 48 + int(rng.integers(0, 12))  # MIDI note of the key
    progression = [0, 5, 7, 0] if valence >= 5 else [0, 8, 3, 7]
    harmonics = 6 if valence >= 5 else 3
    bright = 0.55 if valence >= 5 else 0.3
    chord_len = 4 * beat
    k = 0
    start = 0.0
    while start < seconds:
        degree = progression[k % len(progression)]
        seg = (t >= start) & (t < start + chord_len)
        tt = t[seg] - start
        env = np.minimum(1.0, tt / 0.05) * np.exp(-tt / (chord_len * 0.8))
        for iv in mode:
            f0 = 440.0 * 2 ** ((root + degree + iv - 69) / 12)
            for h in range(1, harmonics + 1):
                out[seg] += (bright**h) * np.sin(2 * np.pi * f0 * h * tt) * env
        # a melody note on every beat, from the chord
        for b in range(4):
            b0 = start + b * beat
            nseg = (t >= b0) & (t < b0 + beat)
            if not nseg.any():
                continue
            tn = t[nseg] - b0
            iv = mode[int(rng.integers(0, 3))] + 12
            f0 = 440.0 * 2 ** ((root + degree + iv - 69) / 12)
            out[nseg] += 0.6 * np.sin(2 * np.pi * f0 * tn) * np.exp(-tn / (beat * 0.5))
        start += chord_len
        k += 1
    out += 0.01 * rng.standard_normal(n)
    out *= 0.8 / (np.max(np.abs(out)) + 1e-9)
    return out.astype(np.float32)


def write_library(
    folder: str | Path, settings: ListeningSettings, seed: int = 0, audio_format: str = "flac"
) -> list[dict[str, object]]:
    """Synthesise the clips into a new library folder (``clips.csv`` and FLAC files, or
    ``audio_format`` ``ogg`` for small lossy files).

    Norms: half the clips pleasant (valence 6.5-8.5), half unpleasant (1.5-3.5), arousal
    2-8, in a seeded order. Returns the rows of ``clips.csv``.
    """
    import soundfile

    from protocols.library import write_library as write_table

    root = Path(folder)
    if root.exists():
        raise RecallLabError(f"{root} already exists; the library folder must be new")
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed + 424_242)
    signs = np.array([1, -1] * (settings.n_clips // 2) + [1] * (settings.n_clips % 2))
    rng.shuffle(signs)
    rows: list[dict[str, object]] = []
    for i, sign in enumerate(signs):
        valence = round(float(5 + sign * rng.uniform(1.5, 3.5)), 1)
        arousal = round(float(rng.uniform(2, 8)), 1)
        cid = f"clip{i + 1:02d}"
        audio = synthesize_clip(valence, arousal, settings.clip_seconds, rng)
        soundfile.write(str(root / f"{cid}.{audio_format}"), audio, CLIP_RATE)
        mood = "bright" if sign > 0 else "dark"
        rows.append(
            {
                "id": cid,
                "file": f"{cid}.{audio_format}",
                "title": f"Simulated {mood} piece {i + 1}",
                "valence": valence,
                "arousal": arousal,
            }
        )
    write_table(root, rows)
    return rows


# ---------------------------------------------------------------------- the session
def listening_plan(
    settings: ListeningSettings,
    library,
    start: float,
    sfreq: float,
    state: np.ndarray,
    rng: np.random.Generator,
) -> tuple[list[tuple[float, float, dict]], list[tuple[float, str, str, dict]]]:
    """Phases and events of a listening block starting at ``start`` s; writes the clips'
    valence (``(valence - 5) / 4``, so -1..1) into ``state`` while they play.

    Returns ``(phases, events)``: phases as ``(start, end, marker)``, events as
    ``(time, source, label, value)``, times in seconds from the recording's start.
    """
    phases: list[tuple[float, float, dict]] = []
    events: list[tuple[float, str, str, dict]] = []
    order = rng.permutation(len(library))
    t = start
    for clip in (library.clips[i] for i in order):
        play = min(settings.clip_seconds, clip.duration)
        marker = {"phase": f"{settings.block}-{clip.id}", "kind": "listening", "memory": None}
        marker |= {"block": settings.block, "clip": clip.id}
        phases.append((t, t + play, marker))
        events.append(
            (
                t,
                "stimulus",
                "clip_start",
                {
                    "clip": clip.id,
                    "block": settings.block,
                    "file": clip.file.name,
                    "sha256": clip.sha256,
                    "title": clip.title,
                    "offset": 0.0,
                    "output_latency": None,
                },
            )
        )
        events.append(
            (
                t + play,
                "stimulus",
                "clip_end",
                {"clip": clip.id, "block": settings.block, "played": play},
            )
        )
        valence = 0.0 if clip.valence is None else (clip.valence - 5) / 4
        state[int(t * sfreq) : int((t + play) * sfreq)] = valence
        t += play
        rate = {"phase": f"{settings.block}-{clip.id}-rating", "kind": "sam", "memory": None}
        rate |= {"block": settings.block, "clip": clip.id}
        phases.append((t, t + settings.rating_seconds, rate))
        r = t + float(rng.uniform(1.0, 0.5 * settings.rating_seconds + 1.0))
        for scale, norm in (("valence", clip.valence), ("arousal", clip.arousal)):
            value = int(rng.integers(3, 8)) if norm is None else norm + rng.normal(0, 0.7)
            value = int(np.clip(round(value), 1, 9))
            events.append(
                (
                    min(r, t + settings.rating_seconds - 0.1),
                    "participant",
                    f"sam_{scale}",
                    {"": str(value)},
                )
            )
            r += float(rng.uniform(0.3, 0.8))
        t += settings.rating_seconds
    return phases, events


def event_value(value: dict) -> str:
    """An event's value text: JSON, or the plain text of ``{"": text}``."""
    if set(value) == {""}:
        return str(value[""])
    return json.dumps(value, separators=(",", ":"))
