"""Five-class (emotion) decoding of imported EAV participants (``labels.target: emotion``).

A small synthetic participant in EAV's layout (EEG .mat files only: trials of EAV's five
emotions, in shuffled order) is imported through ``recall-lab import`` and decoded through
``recall-lab decode`` with the band-power baseline: with an emotion-specific alpha rhythm in
the EEG the decoder beats its permutation chance (about 1/5); without one it stays near it.
The fusion decoders with tiny models take the same five classes in ``test_import_eav.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

pytestmark = pytest.mark.timeout(240)

EMOTIONS = ("neutral", "sadness", "anger", "happiness", "calmness")
RATE = 500
SECONDS = 4  # EAV's trials are 20 s
PER_EMOTION = 4

# Band power of 1 s windows, every trial's windows labelled by its emotion; blocks of trials
# held out in time; many cheap permutations (the representation is label-free).
CONFIG = """
decoders: [bandpower_logreg]
labels: {source: trial_labels, target: emotion}
preprocess: {resample: 100.0, l_freq: 1.0, h_freq: 40.0, line_freq: null, baseline: false,
             bad_channels: false, reference: null}
windows: {input: bandpower, length: 1.0, step: 0.5, use_recall_only: false}
evaluation: {split: blocks, n_folds: 5, gap: 0.0, n_permutations: 49, leaky: false}
"""


def write_eeg_only_folder(root: Path, effect: float, seed: int = 0) -> Path:
    """``subject03/EEG`` with trials of the five emotions in random order; emotion ``e`` adds
    a 10 Hz rhythm of ``effect`` x 30 uV to channel ``e`` (no video, no audio)."""
    import scipy.io

    sub = root / "subject03"
    (sub / "EEG").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.repeat(np.arange(5), PER_EMOTION))
    n, t = len(order), np.arange(SECONDS * RATE) / RATE
    seg = rng.normal(0, 10, (SECONDS * RATE, 30, n))
    label = np.zeros((10, n))
    for k, e in enumerate(order):
        label[2 * e + 1, k] = 1  # listening trials
        seg[:, e, k] += effect * 30 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi))
    scipy.io.savemat(sub / "EEG" / "subject03_eeg.mat", {"seg1": seg})
    scipy.io.savemat(sub / "EEG" / "subject03_eeg_label.mat", {"label": label})
    return sub


def _import(root: Path, effect: float) -> Path:
    sub = write_eeg_only_folder(root, effect)
    out = root / f"EAV03-{effect:g}.h5"
    assert main(["import", str(sub), "--out", str(out), "--participant", "EAV03"]) == 0
    return out


def _decode(session: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    cfg = tmp_path / "emotion.yaml"
    cfg.write_text(CONFIG)
    capsys.readouterr()
    args = ["decode", str(session), "--config", str(cfg), "--report", str(tmp_path / "rep")]
    assert main([*args, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def with_effect(tmp_path_factory) -> Path:
    return _import(tmp_path_factory.mktemp("eav-effect"), 1.0)


def test_five_emotions_are_decoded_above_their_chance(with_effect, tmp_path, capsys):
    from decoding.results import read_decoded_trajectory

    session = tmp_path / "s.h5"
    session.write_bytes(with_effect.read_bytes())  # results are written into a copy
    d = _decode(session, tmp_path, capsys)
    assert d["target"] == "emotion"
    assert d["class_names"] == {str(i): name for i, name in enumerate(EMOTIONS)}
    # 1 s windows every 0.5 s wholly inside 4 s trials: seven per trial, every emotion
    assert d["class_counts"] == {str(i): 7 * PER_EMOTION for i in range(5)}
    m = d["decoders"]["bandpower_logreg"]
    assert 0.1 < m["chance_balanced_accuracy"] < 0.35, m
    assert m["balanced_accuracy"] > m["chance_balanced_accuracy"] + 0.3, m
    assert m["accuracy"] > 0.5 and m["p_value"] <= 0.05, m

    report = next((tmp_path / "rep").glob("run-*"))
    metrics = json.loads((report / "metrics.json").read_text())["bandpower_logreg"]
    assert metrics["target"] == "emotion" and metrics["class_names"] == list(EMOTIONS)
    assert metrics["classes"] == [0, 1, 2, 3, 4]
    cm = np.asarray(metrics["confusion"])
    assert cm.shape == (5, 5) and cm.sum() == metrics["n_windows_tested"] == 35 * PER_EMOTION
    assert np.trace(cm) / cm.sum() == pytest.approx(metrics["accuracy"])
    assert (
        "Classes (emotion): neutral, sadness, anger, happiness, calmness"
        in (report / "README.md").read_text()
    )
    assert (report / "confusion.png").stat().st_size > 0

    traj = read_decoded_trajectory(session)
    assert traj.target == "emotion" and traj.classes == list(EMOTIONS)
    assert traj.probabilities.shape == (35 * PER_EMOTION, 5)
    assert set(np.unique(traj.reported)) == set(range(5))
    assert set(np.unique(traj.label)) <= set(range(5))
    # the valence the emotions imply: happiness and calmness +1, sadness and anger -1
    side = np.array([0, -1, -1, 1, 1], np.float32)
    np.testing.assert_allclose(traj.valence, traj.probabilities @ side, atol=1e-6)
    assert main(["validate", str(session)]) == 0


def test_without_an_effect_the_emotions_stay_at_chance(tmp_path, capsys):
    session = _import(tmp_path, 0.0)
    d = _decode(session, tmp_path, capsys, "--no-write")
    m = d["decoders"]["bandpower_logreg"]
    assert 0.1 < m["chance_balanced_accuracy"] < 0.35, m
    assert m["balanced_accuracy"] < 0.4 and m["p_value"] > 0.05, m


def test_valence_of_the_same_trials_keeps_its_three_classes(with_effect, tmp_path, capsys):
    cfg = tmp_path / "valence.yaml"
    cfg.write_text(CONFIG.replace("target: emotion", "target: valence"))
    capsys.readouterr()
    args = ["decode", str(with_effect), "--config", str(cfg), "--no-write", "--report"]
    assert main([*args, str(tmp_path / "rep"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["target"] == "valence" and set(d["class_counts"]) == {"-1", "0", "1"}
    # neutral 4 trials; sadness + anger and happiness + calmness 8 each
    assert d["class_counts"] == {"-1": 7 * 8, "0": 7 * 4, "1": 7 * 8}
    report = next((tmp_path / "rep").glob("run-*"))
    metrics = json.loads((report / "metrics.json").read_text())["bandpower_logreg"]
    assert metrics["classes"] == [-1, 0, 1]
    assert metrics["class_names"] == ["negative", "neutral", "positive"]
    assert np.asarray(metrics["confusion"]).shape == (3, 3)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("{target: arousal}", "labels.target: 'arousal'; use valence or emotion"),
        ("{target: emotion}", "labels.target emotion needs labels.source: trial_labels"),
    ],
)
def test_a_bad_target_is_one_clear_line(tmp_path, capsys, labels, expected):
    from data_schema.errors import ConfigError
    from decoding.config import load_config

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"labels: {labels}\n")
    with pytest.raises(ConfigError, match=expected):
        load_config(cfg)
    session = tmp_path / "s.h5"
    assert main(["simulate", "--out", str(session), "--duration", "60", "--channels", "4"]) == 0
    capsys.readouterr()
    assert main(["decode", str(session), "--config", str(cfg), "--no-write"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err


def test_class_sets_map_probabilities_onto_their_own_codes():
    from data_schema.import_eav import EMOTIONS as EAV_EMOTIONS
    from data_schema.import_eav import VALENCE as EAV_VALENCE
    from decoding.decoders import _full_proba
    from decoding.labels import EMOTION_CLASSES, VALENCE_CLASSES

    # the importer's emotions are the decoder's classes, in the same order
    assert EMOTION_CLASSES.names == EAV_EMOTIONS == EMOTIONS
    assert EMOTION_CLASSES.valence == tuple(float(EAV_VALENCE[e]) for e in EAV_EMOTIONS)
    # a class absent in training (here anger, code 2) gets its column, at probability 0
    p = _full_proba(np.array([0, 1, 3, 4]), np.full((2, 4), 0.25), EMOTION_CLASSES.codes)
    assert p.shape == (2, 5) and np.all(p[:, 2] == 0) and np.allclose(p.sum(1), 1)
    # valence's trajectory is exactly P(positive) - P(negative), as before targets existed
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(3), 50).astype(np.float32)
    assert np.array_equal(VALENCE_CLASSES.expected_valence(q), q[:, 2] - q[:, 0])
