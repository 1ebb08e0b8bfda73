"""Decoding configuration: typed, versioned, validated when loaded.

A configuration file (YAML or JSON) lists only what differs from the defaults, e.g.::

    preprocess:
      line_freq: 60
      ica: true
    cebra:
      max_iterations: 2000
    evaluation:
      n_permutations: 99

Unknown sections or fields, and values of the wrong type, stop with a message that names the
field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from data_schema.errors import ConfigError
from decoding.fusion import FusionConfig
from decoding.music_supervised import MusicSupervisedConfig

CONFIG_VERSION = 1


@dataclass
class PreprocessConfig:
    """MNE preprocessing. Defaults suit 16-64 channel EEG at 250-1000 Hz."""

    resample: float | None = 250.0  # Hz; None keeps the recorded rate
    l_freq: float | None = 1.0  # band-pass low edge, Hz
    h_freq: float | None = 45.0  # band-pass high edge, Hz
    line_freq: float | str | None = "auto"  # 50, 60, "auto" (from the spectrum) or None
    reference: str | None = "average"  # "average", a channel name, or None to keep
    montage: str | None = "colin27_1005"  # MNE built-in montage, for interpolation
    bad_channels: bool = True  # detect and interpolate bad channels
    bad_z: float = 5.0  # robust z-score of log-variance above which a channel is bad
    ica: bool = False  # ICA removal of blink components
    ica_components: int | float = 0.99
    baseline: bool = True  # subtract the baseline phase (RYM), if the session has one
    channels: list[str] | None = None  # restrict to these channels


@dataclass
class LabelConfig:
    """How valence reports become labels (see ``decoding/labels.py``)."""

    kind: str = "auto"  # "discrete", "continuous" or "auto"
    merge_gap: float = 2.0
    press_duration: float = 0.2
    min_chunk: float = 0.0
    threshold: float = 1 / 3  # continuous -> classes
    # Where labels come from: "reports" (valence keys or cursor during recall),
    # "clip_ratings" (listening blocks: every window of a clip gets the participant's SAM
    # valence rating of that clip, above 5 positive, below 5 negative, 5 neutral) or
    # "trial_labels" (imported datasets whose trial markers carry a valence, e.g. EAV).
    source: str = "reports"
    # What the decoders tell apart: "valence" (negative / neutral / positive, codes -1, 0, 1)
    # or "emotion" (the trial's emotion, EAV's five: neutral, sadness, anger, happiness,
    # calmness, codes 0-4; only with source trial_labels, whose markers name the emotion).
    target: str = "valence"


@dataclass
class WindowConfig:
    """Analysis windows on which features, embeddings and predictions live."""

    length: float = 1.0  # seconds
    step: float = 0.25  # seconds between window starts
    bands: dict[str, list[float]] = field(
        default_factory=lambda: {
            "theta": [4.0, 8.0],
            "alpha": [8.0, 13.0],
            "beta": [13.0, 30.0],
            "gamma": [30.0, 45.0],
        }
    )
    # Only recall phases, where the session has them. Elsewhere (baseline, cue, typing the
    # description, drawing, humming) the participant is not asked for valence, so "no press"
    # is not a neutral report, and those phases' EEG (eyes, typing, drawing) would teach the
    # decoder "not recalling" as "neutral". A recording without phases is used whole.
    use_recall_only: bool = True
    # What the decoders see: "bandpower" (log band power of each window, the default) or
    # "samples" (every preprocessed, baseline-subtracted EEG sample at the session's rate, as
    # RYM gave CEBRA; ``length``, ``step`` and ``bands`` are then unused), or "de"
    # (differential entropy per channel, band and 1-s segment of the window, the input of the
    # music-supervised encoder; Avramidis et al. 2022).
    input: str = "bandpower"


@dataclass
class MusicConfig:
    """The music a listening block played, for decoders supervised by it and for retrieval."""

    # Library folder (``clips.csv`` + audio); None: the session's own ``music_library``
    # attribute (relative to the session file), as ``recall-lab simulate --listening`` writes.
    library: str | None = None
    models: str | None = None  # models folder holding the audio tagger (None: the default)
    tagger_device: str = "cpu"
    # Seconds per tagger segment and between segments; the window's music is the segment
    # that starts nearest the window's start within its clip.
    segment_length: float = 3.0
    segment_step: float = 1.0


@dataclass
class MultimodalConfig:
    """The participant's voice and face beside the EEG, for the multimodal fusion decoders."""

    audio_stream: str = "audio"  # the microphone's stream in the session file
    video_stream: str = "video"  # the camera's stream
    frame_size: int = 112  # frames are resized to this square before the ViT's own processor


@dataclass
class CebraConfig:
    """CEBRA settings (``cebra.CEBRA``). ``device`` picks CUDA when present."""

    model_architecture: str = "offset1-model"
    output_dimension: int = 3
    num_hidden_units: int = 32
    batch_size: int = 256
    learning_rate: float = 3e-3
    temperature: float = 1.0
    max_iterations: int = 300
    time_offsets: int = 10
    device: str = "cuda_if_available"
    # CPU threads for torch; None: 1 on machines with fewer than 4 cores, where torch's
    # thread pool slows training several-fold when other processes compete for the cores.
    cpu_threads: int | None = None
    # Learnable temperature ("auto", RYM) or the fixed ``temperature`` ("constant").
    temperature_mode: str = "constant"
    # Neighbours of the kNN read-out, or "sqrt": the odd number nearest sqrt(training rows)
    # (RYM's rule).
    k_neighbors: int | str = 15
    knn_metric: str = "cosine"  # any sklearn metric; RYM used "euclidean"
    # At most this many training rows, evenly spaced, for the kNN read-out (None: all). A kNN
    # over every EEG sample of a study costs hours per fold; the embedding still sees all.
    knn_max_train: int | None = None
    # The leaky (RYM) fit of a study decoded across participants: one CEBRA multi-session
    # model with an input layer per participant (RYM), instead of one model on pooled data.
    multi_session: bool = False
    consistency_runs: int = 3  # refits on all data to plot consistency across runs


@dataclass
class EvaluationConfig:
    """Leakage-free evaluation."""

    split: str = "auto"  # "blocks", "memories", "sessions", "participants" or "auto"
    n_folds: int = 5  # contiguous blocks for "blocks"
    gap: float = 5.0  # seconds excluded from training on each side of a test block
    # Circular label shifts for the chance level. Decoders whose representation sees labels
    # (CEBRA-Behavior) refit everything per shift, so they get fewer: 19 still reaches p=0.05.
    n_permutations: int = 99
    n_permutations_refit: int = 19
    min_shift: float = 0.1  # smallest shift, as a fraction of the recording
    leaky: bool = True  # also run the RYM protocol (marked leaky)
    # With split "participants" (a study decoded across participants): also decode each
    # participant on their own, with blocked splits in time, beside the across figures.
    within_participant: bool = False
    seed: int = 0
    # Worker processes for the permutation refits (each with one torch thread); None: one per
    # CPU core. The shifted labels are drawn in the parent, so results do not depend on it.
    n_jobs: int | None = None


@dataclass
class DecodeConfig:
    """Everything ``recall-lab decode`` does, with its defaults."""

    version: int = CONFIG_VERSION
    decoders: list[str] = field(
        default_factory=lambda: ["cebra_behavior_knn", "cebra_time_knn", "bandpower_logreg"]
    )
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)
    cebra: CebraConfig = field(default_factory=CebraConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    music: MusicConfig = field(default_factory=MusicConfig)
    music_supervised: MusicSupervisedConfig = field(default_factory=MusicSupervisedConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    multimodal: MultimodalConfig = field(default_factory=MultimodalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecodeConfig:
        """The configuration :meth:`to_dict` gave (checked as a file's would be)."""
        cfg = _build(cls, dict(data), "")
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise :class:`ConfigError` for values out of range."""
        from decoding.decoders import DECODERS

        for name in self.decoders:
            if name not in DECODERS:
                raise ConfigError(f"decoders: unknown decoder {name!r}; known: {sorted(DECODERS)}")
        if not self.decoders:
            raise ConfigError("decoders: list at least one decoder")
        w, e, p = self.windows, self.evaluation, self.preprocess
        if w.length <= 0 or w.step <= 0:
            raise ConfigError("windows.length and windows.step must be > 0 seconds")
        if e.split not in ("auto", "blocks", "memories", "sessions", "participants"):
            raise ConfigError(
                f"evaluation.split: {e.split!r}; use auto, blocks, memories, sessions or "
                "participants"
            )
        if e.n_folds < 2:
            raise ConfigError("evaluation.n_folds must be at least 2")
        if e.n_jobs is not None and e.n_jobs < 1:
            raise ConfigError("evaluation.n_jobs must be >= 1 (or null for one per CPU core)")
        if e.gap < 0 or e.n_permutations < 0 or e.n_permutations_refit < 0:
            raise ConfigError("evaluation.gap and evaluation.n_permutations* must be >= 0")
        if p.line_freq not in (None, "auto", 50, 60, 50.0, 60.0):
            raise ConfigError("preprocess.line_freq: use 50, 60, auto or null")
        if self.labels.kind not in ("auto", "discrete", "continuous"):
            raise ConfigError("labels.kind: use discrete, continuous or auto")
        if w.input not in ("bandpower", "samples", "de", "raw"):
            raise ConfigError(f"windows.input: {w.input!r}; use bandpower, samples, de or raw")
        from decoding.decoders import RAW_EEG

        raw_users = [d for d in self.decoders if d in RAW_EEG]
        if raw_users and w.input != "raw":
            raise ConfigError(
                f"decoders: {', '.join(raw_users)} read the EEG windows themselves: set "
                "windows.input: raw (the multimodal preset does)"
            )
        if w.input == "raw" and [d for d in self.decoders if d not in RAW_EEG]:
            raise ConfigError(
                "windows.input raw is for the fusion decoders (multimodal_fusion, eeg_only, "
                "audio_only, video_only) only"
            )
        self.fusion.check()
        if self.labels.source not in ("reports", "clip_ratings", "trial_labels"):
            raise ConfigError(
                f"labels.source: {self.labels.source!r}; use reports, clip_ratings or trial_labels"
            )
        from decoding.labels import TARGETS

        if self.labels.target not in TARGETS:
            raise ConfigError(f"labels.target: {self.labels.target!r}; use {' or '.join(TARGETS)}")
        if self.labels.target != "valence" and self.labels.source != "trial_labels":
            raise ConfigError(
                f"labels.target {self.labels.target} needs labels.source: trial_labels (trial "
                f"markers naming the {self.labels.target}, as imported EAV sessions have; the "
                "eav_emotion preset sets both)"
            )
        if "music_supervised" in self.decoders and w.input != "de":
            raise ConfigError(
                "decoders: music_supervised reads differential entropy: set windows.input: de "
                "(the music preset does)"
            )
        if "music_supervised" in self.decoders and self.labels.source != "clip_ratings":
            raise ConfigError(
                "decoders: music_supervised learns from listening blocks: set labels.source: "
                "clip_ratings (the music preset does)"
            )
        self.music_supervised.check()
        m = self.music
        if not (m.segment_length > 0 and m.segment_step > 0):
            raise ConfigError("music.segment_length and music.segment_step must be > 0 seconds")
        if w.input == "samples" and "bandpower_logreg" in self.decoders:
            raise ConfigError(
                "decoders: bandpower_logreg needs windows.input: bandpower (it reads band power)"
            )
        c = self.cebra
        if c.temperature_mode not in ("constant", "auto"):
            raise ConfigError("cebra.temperature_mode: use constant or auto")
        if isinstance(c.k_neighbors, str) and c.k_neighbors != "sqrt":
            raise ConfigError("cebra.k_neighbors: give a number of neighbours or sqrt")
        if isinstance(c.k_neighbors, int) and c.k_neighbors < 1:
            raise ConfigError("cebra.k_neighbors must be at least 1")
        from sklearn.neighbors import VALID_METRICS

        if c.knn_metric not in VALID_METRICS["brute"]:
            raise ConfigError(
                f"cebra.knn_metric: {c.knn_metric!r} is not a metric sklearn knows (e.g. cosine, "
                "euclidean)"
            )
        if c.knn_max_train is not None and c.knn_max_train < 10:
            raise ConfigError("cebra.knn_max_train must be at least 10 (or null for all rows)")
        for band, edges in w.bands.items():
            if len(edges) != 2 or not 0 <= edges[0] < edges[1]:
                raise ConfigError(f"windows.bands.{band}: give [low, high] in Hz with low < high")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of fields, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(f"{name}: unknown field; known fields: {sorted(fields)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, name)
            continue
        kwargs[key] = _check_type(value, hint, name)
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, name: str) -> Any:
    text = str(hint)
    ok = True
    if value is None:
        ok = "None" in text
    elif isinstance(value, bool):
        ok = "bool" in text
    elif isinstance(value, int | float):
        ok = "float" in text or "int" in text
    elif isinstance(value, str):
        ok = "str" in text
    elif isinstance(value, list):
        ok = "list" in text
    elif isinstance(value, dict):
        ok = "dict" in text
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not a valid value (expected {text})")
    return value


PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """The presets shipped in ``decoding/presets`` (file names without ``.yaml``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(path: str | Path | None = None, *, preset: str | None = None) -> DecodeConfig:
    """Defaults, updated by the preset ``preset`` (``decoding/presets/<name>.yaml``) and then
    by the YAML or JSON file at ``path``: each only lists what it changes."""
    data: dict[str, Any] = {}
    if preset is not None:
        file = PRESETS_DIR / f"{preset}.yaml"
        if not file.is_file():
            raise ConfigError(
                f"--preset {preset!r}: no such preset; presets: {', '.join(preset_names())}"
            )
        data = _read(file)
    if path is not None:
        data = _merge(data, _read(Path(path)))
    if isinstance(data, dict) and int(data.get("version", CONFIG_VERSION)) > CONFIG_VERSION:
        raise ConfigError(f"config version {data['version']} is newer than this recall-lab")
    where = Path(path).name if path is not None else (f"preset {preset}" if preset else "")
    try:
        cfg = _build(DecodeConfig, data, "")
        cfg.check()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None
    return cfg


def _merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge field by field, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _read(p: Path) -> Any:
    """The mapping in a YAML or JSON settings file (a one-line error if it is not one)."""
    if not p.is_file():
        raise ConfigError(f"{p}: no such configuration file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, Exception) as exc:  # yaml.YAMLError and json errors alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{p} cannot be parsed: {first}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings, got {type(data).__name__}")
    return data
