"""Melodies chosen from a music library by the participant's own EEG, one per affect segment.

With ``recall-lab generate --melody-library DIR``, the music-supervised encoder
(:mod:`decoding.music_supervised`, Avramidis et al. 2022) is trained on the session's
listening blocks (every rated clip: this is the model used, not evaluated; ``recall-lab
retrieve`` gives its held-out figures). For each affect segment of a recall, the EEG windows
inside the segment are embedded, averaged (unit vectors) and compared by cosine similarity
with every library clip's music embedding; the best clip becomes that segment's melody
conditioning for MusicGen, alone or mixed with the participant's guiding melody
(``--melody-mix``). The manifest records each segment's clip and score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError


@dataclass
class SegmentClip:
    """The library clip chosen for one segment."""

    segment: int
    clip: str
    title: str
    score: float  # cosine similarity in the shared space
    runner_up: str
    runner_up_score: float
    windows: int  # EEG windows averaged

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "clip": self.clip,
            "title": self.title,
            "score": round(self.score, 4),
            "runner_up": self.runner_up,
            "runner_up_score": round(self.runner_up_score, 4),
            "eeg_windows": self.windows,
        }


class LibraryMelodies:
    """The encoder trained on a session's listening blocks, and the library to choose from."""

    def __init__(self, session_path: str | Path, library: str | Path, models: str | Path | None):
        from decoding.config import load_config

        self.cfg = load_config(preset="music")
        self.cfg.music.library = str(library)
        self.cfg.music.models = None if models is None else str(models)
        self.session_path = Path(session_path)
        self.notes: list[str] = []

    def fit(self) -> LibraryMelodies:
        """Train on the session's listening windows and embed the library's clips."""
        from decoding.decoders import make_decoder
        from decoding.evaluation import fit_representation
        from decoding.music_tagger import MusicTagger
        from decoding.pipeline import add_music, build_dataset, load_session_windows
        from decoding.retrieval import gallery_embeddings, library_segments

        cfg = self.cfg
        sw = load_session_windows(self.session_path, cfg)
        ds = build_dataset([sw], cfg)
        self.notes += add_music(ds, [sw], cfg)
        self.library = ds.library
        self.decoder = make_decoder("music_supervised", cfg, cfg.evaluation.seed)
        fit_representation(self.decoder, ds, np.arange(len(ds.y)), ds.y)
        tagger = MusicTagger.load(cfg.music.models, device=cfg.music.tagger_device)
        segments = library_segments(self.library, tagger, cfg)
        self.clip_ids = list(segments)
        self.gallery = gallery_embeddings(self.decoder, segments)
        self._eeg()
        return self

    def _eeg(self) -> None:
        """DE windows of the whole recording, in the layout the encoder was trained on."""
        from data_schema.reader import read_session
        from decoding.features import de_windows
        from decoding.preprocess import preprocess

        session = read_session(self.session_path)
        prepared = preprocess(session, self.cfg.preprocess)
        win = de_windows(prepared, self.cfg.windows, baseline=self.cfg.preprocess.baseline)
        names = self.decoder.feature_names or win.feature_names
        pos = {f: i for i, f in enumerate(win.feature_names)}
        missing = [f for f in names if f not in pos]
        if missing:
            raise RecallLabError(
                f"the recall's EEG lacks {len(missing)} feature(s) the encoder was trained on"
            )
        self.X = win.X[:, [pos[f] for f in names]]
        self.times = win.times

    def choose(self, segments: list[Any], recall_start: float) -> list[SegmentClip]:
        """The best clip for each segment (``start``/``end`` in seconds from ``recall_start``,
        the recall's LSL start)."""
        from decoding.retrieval import cosine_scores

        out = []
        for seg in segments:
            lo, hi = recall_start + seg.start, recall_start + seg.end
            sel = np.flatnonzero((self.times >= lo) & (self.times < hi))
            if sel.size == 0:  # shorter than a window: the window nearest its middle
                sel = np.array([int(np.argmin(np.abs(self.times - (lo + hi) / 2)))])
            z = self.decoder.transform(self.X[sel])
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
            q = z.mean(axis=0, keepdims=True)
            scores = cosine_scores(q, self.gallery)[0]
            order = np.argsort(-scores, kind="stable")
            best = self.library.get(self.clip_ids[order[0]])
            second = self.clip_ids[order[1]] if len(order) > 1 else ""
            out.append(
                SegmentClip(
                    seg.index,
                    best.id,
                    best.title,
                    float(scores[order[0]]),
                    second,
                    float(scores[order[1]]) if len(order) > 1 else float("nan"),
                    int(sel.size),
                )
            )
        return out

    def melody(
        self,
        choice: SegmentClip,
        own: np.ndarray | None,
        own_rate: int | None,
        own_offset: float,
        mix: float,
    ) -> tuple[np.ndarray, int]:
        """The conditioning waveform for a segment: the chosen clip (mono), or with ``mix``
        below 1 the clip weighted ``mix`` plus the participant's melody (from ``own_offset``
        s) weighted ``1 - mix``, both scaled to the same RMS first."""
        audio, rate = self.library.get(choice.clip).read()
        clip = audio.mean(axis=1)
        if mix >= 1.0 or own is None or not own_rate or len(own) == 0:
            return clip.astype(np.float32), rate
        from fractions import Fraction

        from scipy.signal import resample_poly

        mel = np.asarray(own, np.float32)
        mel = mel.mean(axis=1) if mel.ndim == 2 else mel
        fr = Fraction(int(rate), int(own_rate)).limit_denominator(1000)
        mel = resample_poly(mel, fr.numerator, fr.denominator).astype(np.float32)
        start = int(own_offset * rate) % max(1, len(mel))
        mel = np.roll(mel, -start)
        mel = np.resize(mel, len(clip))  # loop a short melody under a longer clip

        def rms(x: np.ndarray) -> float:
            return float(np.sqrt(np.mean(x**2))) or 1.0

        mixed = mix * clip / rms(clip) + (1 - mix) * mel / rms(mel)
        return (0.5 * mixed / (np.max(np.abs(mixed)) + 1e-9)).astype(np.float32), rate
