"""EEG-to-music retrieval in the music-supervised encoder's shared space, evaluated honestly.

For each EEG window of a listening block (the query), the clips of the library (the gallery)
are ranked by the cosine similarity between the window's EEG embedding and each clip's music
embedding (the mean of its segments' embeddings, each a unit vector). Two questions, as in
Avramidis et al. (ICASSP 2022):

- **track retrieval**: is the clip the participant was hearing ranked high? One relevant item
  per query.
- **emotion retrieval**: are clips of the same valence class (the library's norm, else the
  participant's rating) ranked high?

Each is reported as precision at k (k = 10, or the library size if smaller) and mean average
precision. Queries are held out: one fold per clip, the encoder trained without that clip's
EEG or music, so a query's own clip is new to the model. Chance: the same metrics with the
queries' relevance permuted (the clip each window heard, or its class, shuffled across
windows), ``p = (k + 1) / (n + 1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine_scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity ``[queries x gallery]``."""
    return _unit(np.asarray(queries, np.float64)) @ _unit(np.asarray(gallery, np.float64)).T


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query: the fraction of its ``k`` best-scored gallery items that are relevant."""
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(relevant, top, axis=1).mean(axis=1)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per query: average precision over the full ranking (NaN for a query with nothing
    relevant)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rel = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    n_rel = rel.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, (rel * hits / ranks).sum(axis=1) / n_rel, np.nan)


@dataclass
class RetrievalScore:
    """One retrieval task's figures."""

    precision_at_k: float
    mean_average_precision: float
    chance_precision_at_k: float | None = None
    chance_mean_average_precision: float | None = None
    p_value: float | None = None  # for mAP
    n_queries: int = 0
    null_map: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision_at_k": self.precision_at_k,
            "mean_average_precision": self.mean_average_precision,
            "chance_precision_at_k": self.chance_precision_at_k,
            "chance_mean_average_precision": self.chance_mean_average_precision,
            "p_value": self.p_value,
            "n_queries": self.n_queries,
            "n_permutations": len(self.null_map),
        }


def score_task(
    scores: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    k: int,
    n_permutations: int,
    rng: np.random.Generator,
) -> RetrievalScore:
    """Metrics for queries whose relevant gallery items share their label, and the chance
    level from permuting the queries' labels (``n_permutations`` times)."""
    ok = np.array([q in set(gallery_labels.tolist()) for q in query_labels])
    scores, query_labels = scores[ok], query_labels[ok]
    if not len(query_labels):
        raise RecallLabError("no query has a relevant clip in the library")
    relevant = query_labels[:, None] == gallery_labels[None, :]
    p = float(precision_at_k(scores, relevant, k).mean())
    m = float(np.nanmean(average_precision(scores, relevant)))
    out = RetrievalScore(p, m, n_queries=len(query_labels))
    if n_permutations > 0:
        null_p, null_m = [], []
        for _ in range(n_permutations):
            perm = rng.permutation(query_labels)
            rel = perm[:, None] == gallery_labels[None, :]
            null_p.append(float(precision_at_k(scores, rel, k).mean()))
            null_m.append(float(np.nanmean(average_precision(scores, rel))))
        out.chance_precision_at_k = float(np.mean(null_p))
        out.chance_mean_average_precision = float(np.mean(null_m))
        out.p_value = (1 + sum(v >= m for v in null_m)) / (n_permutations + 1)
        out.null_map = null_m
    return out


@dataclass
class RetrievalResult:
    """Track and emotion retrieval of one session (or several pooled)."""

    track: RetrievalScore
    emotion: RetrievalScore
    k: int
    gallery: list[str]
    folds: int
    notes: list[str] = field(default_factory=list)
    best_clip: dict[str, str] = field(default_factory=dict)  # heard clip -> most often top 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "gallery": self.gallery,
            "folds": self.folds,
            "track_retrieval": self.track.as_dict(),
            "emotion_retrieval": self.emotion.as_dict(),
            "top_clip_for_heard_clip": self.best_clip,
            "notes": self.notes,
        }


def gallery_embeddings(decoder: Any, segments: dict[str, np.ndarray]) -> np.ndarray:
    """Each clip's point in the shared space: the mean of its segments' unit embeddings."""
    rows = []
    for seg in segments.values():
        rows.append(_unit(_unit(decoder.embed_music(seg)).mean(axis=0)))
    return np.stack(rows)


def evaluate_retrieval(
    ds: Any,
    cfg: Any,
    library: Any,
    segments: dict[str, np.ndarray],
    clip_classes: dict[str, int],
    *,
    k: int = 10,
    n_permutations: int = 99,
    tick: Callable[[], None] | None = None,
) -> RetrievalResult:
    """Leave-one-clip-out retrieval on the listening windows of ``ds``.

    ``segments``: tagger embeddings ``[segments x dim]`` of every library clip;
    ``clip_classes``: each clip's valence class (-1, 0, 1) where known.
    """
    from decoding.decoders import make_decoder
    from decoding.evaluation import fit_representation, make_folds

    gallery = list(segments)
    if len(gallery) < 2:
        raise RecallLabError("the library has fewer than two clips: nothing to rank")
    folds = make_folds(ds, "memories", cfg.evaluation.n_folds, 0.0)
    scores = np.full((len(ds.y), len(gallery)), np.nan)
    for f in folds:
        dec = make_decoder("music_supervised", cfg, cfg.evaluation.seed)
        fit_representation(dec, ds, f.train, ds.y[f.train])
        scores[f.test] = cosine_scores(
            dec.transform(ds.X[f.test]), gallery_embeddings(dec, segments)
        )
        if tick is not None:
            tick()
    tested = ~np.isnan(scores).any(axis=1)
    scores = scores[tested]
    heard = np.asarray(ds.clip)[tested]
    rng = np.random.default_rng(cfg.evaluation.seed + 104729)
    track = score_task(scores, heard, np.asarray(gallery), k, n_permutations, rng)
    notes: list[str] = []
    g_cls = np.array([clip_classes.get(c, 99) for c in gallery])
    unknown = [c for c in gallery if c not in clip_classes]
    if unknown:
        notes.append(
            f"{len(unknown)} library clip(s) without valence norm or rating: never relevant "
            "for emotion retrieval"
        )
    q_cls = np.asarray(ds.y)[tested]
    emotion = score_task(scores, q_cls, g_cls, k, n_permutations, rng)
    best: dict[str, str] = {}
    top1 = np.asarray(gallery)[scores.argmax(axis=1)]
    for c in sorted(set(heard.tolist())):
        vals, counts = np.unique(top1[heard == c], return_counts=True)
        best[c] = str(vals[counts.argmax()])
    return RetrievalResult(track, emotion, min(k, len(gallery)), gallery, len(folds), notes, best)


def library_segments(library: Any, tagger: Any, cfg: Any) -> dict[str, np.ndarray]:
    """Tagger embeddings ``[segments x dim]`` of every clip of ``library`` (cached on disk)."""
    m = cfg.music
    return {
        c.id: tagger.embed_file(c.file, length=m.segment_length, step=m.segment_step, cache=True)
        for c in library.clips
    }


def clip_classes(library: Any, plays: list[Any]) -> dict[str, int]:
    """Each clip's valence class: the library's norm, else the participant's rating."""
    from decoding.listening import rating_class

    out = {p.clip: rating_class(p.valence) for p in plays if p.valence is not None}
    for c in library.clips:
        if c.valence is not None:
            out[c.id] = rating_class(c.valence)
    return {k: v for k, v in out.items() if v is not None}


def retrieve_sessions(
    paths: list[Any], cfg: Any, *, k: int = 10, n_permutations: int = 99, progress: Any = False
) -> RetrievalResult:
    """``recall-lab retrieve``: listening windows of ``paths``, held-out clip retrieval."""
    from data_schema.progress import Progress
    from data_schema.reader import read_session
    from data_schema.validator import refuse_invalid_session
    from decoding.listening import clip_plays
    from decoding.music_tagger import MusicTagger
    from decoding.pipeline import add_music, build_dataset, load_session_windows
    from generation.models import require_model

    if not paths:
        raise RecallLabError("give at least one session file")
    for p in paths:
        refuse_invalid_session(p, "retrieve")
    require_model("audio-tagger", cfg.music.models)
    prog = Progress.of(progress)
    prog.plan(["read and preprocess", "music", "held-out clips"])
    with prog.step("read and preprocess", len(paths), "session") as step:
        sessions = []
        for p in paths:
            sessions.append(load_session_windows(p, cfg))
            step.update(1)
    ds = build_dataset(sessions, cfg)
    with prog.step("music", 1, "library") as step:
        notes = add_music(ds, sessions, cfg)
        tagger = MusicTagger.load(cfg.music.models, device=cfg.music.tagger_device)
        segments = library_segments(ds.library, tagger, cfg)
        step.update(1)
    plays = [pl for p in paths for pl in clip_plays(read_session(p))]
    classes = clip_classes(ds.library, plays)
    n_clips = len({c for c in ds.clip.tolist() if c})
    if n_clips < 2:
        raise RecallLabError(
            f"the listening blocks hold {n_clips} rated clip(s): retrieval holds out one clip at "
            "a time and needs at least two"
        )
    tick = prog.ticker("held-out clips", n_clips)
    result = evaluate_retrieval(
        ds, cfg, ds.library, segments, classes, k=k, n_permutations=n_permutations, tick=tick
    )
    result.notes = notes + result.notes
    return result
