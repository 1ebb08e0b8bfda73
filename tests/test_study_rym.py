"""The ``rym`` preset: a study decoded across participants as RYM did it (EEG samples into one
multi-session CEBRA model, leave-one-participant-out kNN with k = sqrt(N)), the paper's LEAKY
figure beside honest ones fitted without the test participant, serially and on Dask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from decoding.config import DecodeConfig, load_config
from decoding.decoders import DECODERS, BandPowerLogReg, sqrt_k
from decoding.simulate import SimulationSettings, simulate_session

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pandas module was not found:ImportWarning"),
]

# The preset with short training and few shifts, so a study runs in seconds.
SMALL = """\
cebra:
  max_iterations: 10
  batch_size: 256
  knn_max_train: 1500
evaluation:
  n_folds: 3
  n_permutations: 3
  n_permutations_refit: 2
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rym")
    files = [
        str(
            simulate_session(
                d / f"p{i}.h5",
                SimulationSettings(
                    seed=i,
                    participant_id=f"P0{i}",
                    duration=60.0,
                    n_channels=6,
                    sfreq=125.0,
                    recall=20.0,
                    baseline=10.0,
                    effect=1.0,
                ),
            )
        )
        for i in range(3)
    ]
    root = d / "study"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), *files]) == 0
    (d / "small.yaml").write_text(SMALL)
    # Across participants only (the within figures are the per-participant decode's, tested
    # on Dask in test_study_dask.py).
    (d / "across.yaml").write_text(
        SMALL.replace("evaluation:\n", "evaluation:\n  within_participant: false\n")
    )
    return root


def _decode(root: Path, *extra: str, config: str = "small.yaml") -> dict:
    cfg = root.parent / config
    argv = ["study", "decode", str(root), "--preset", "rym", "--config", str(cfg), *extra]
    assert main(argv) == 0
    runs = sorted((root / "derivatives" / "decoding" / "runs").glob("run-*"))
    return json.loads((runs[-1] / "summary.json").read_text())


def test_k_is_the_odd_number_nearest_sqrt_n_as_the_authors_chose_it():
    # sqrt(100) = 10 is even and not below the root: one less. sqrt(110) = 10.49: one more.
    assert [sqrt_k(n) for n in (100, 110, 120, 90, 2000, 1)] == [9, 11, 11, 9, 45, 1]


def test_the_preset_holds_the_published_settings():
    cfg = load_config(preset="rym")
    c = cfg.cebra
    assert (c.model_architecture, c.output_dimension, c.num_hidden_units) == (
        "offset10-model",
        7,
        95,
    )
    assert (c.learning_rate, c.max_iterations, c.batch_size) == (0.005, 2000, 2048)
    assert (c.temperature_mode, c.k_neighbors, c.knn_metric) == ("auto", "sqrt", "euclidean")
    assert c.multi_session and cfg.windows.input == "samples"
    assert cfg.preprocess.resample is None and cfg.preprocess.l_freq == 0.5
    assert cfg.windows.use_recall_only and cfg.evaluation.split == "participants"


def test_samples_input_is_every_sample_at_the_recorded_rate(study):
    from decoding.pipeline import load_session_windows

    cfg = load_config(preset="rym")
    cfg.windows.use_recall_only = False
    path = next(study.glob("sub-P00/ses-01/*.h5"))
    win = load_session_windows(path, cfg)
    assert win.X.shape[1] == 6 and win.feature_names[:2] == ["Fp1", "Fp2"]
    assert np.allclose(np.diff(win.times), 1 / 125.0, atol=1e-6)
    assert win.window_length == pytest.approx(1 / 125.0)
    # Recall only: fewer rows, all inside recall phases.
    recall = load_session_windows(path, load_config(preset="rym"))
    assert 0 < len(recall.y) < len(win.y)
    assert set(recall.memory) - {""}


def test_rym_study_reports_leaky_and_honest_figures_per_participant(study, capsys):
    s = _decode(study, "--jobs", "1")
    out = capsys.readouterr().out
    # Across: 3 x (1 + 2) + 1 leaky and 3 + 1 for CEBRA-Time; within each participant alone:
    # 3 x (3 folds x (1 + 2) + 1) and 3 x (3 + 1).
    assert "about 56 model fits" in out
    across = s["across_participants"]["decoders"]
    # Multi-session exactly when every participant reported every class (the confusion
    # matrix's rows are the true classes); otherwise one pooled model, and a note says who.
    present = {
        sub: {c for c, row in zip((-1, 0, 1), e["decoders"]["cebra_behavior_knn"]["confusion"])
              if sum(row)}
        for sub, e in s["participants"].items()
    }  # fmt: skip
    every = set().union(*present.values())
    lacking = sorted(sub for sub, classes in present.items() if classes != every)
    assert across["cebra_behavior_knn"]["leaky_multi_session"] is (not lacking)
    for sub in lacking:
        assert f"sub-{sub}" in across["cebra_behavior_knn"]["leaky_note"]
    assert across["cebra_time_knn"]["leaky_multi_session"] is False  # needs labels to align
    for entry in s["participants"].values():
        assert entry["status"] == "ok" and entry["channels"]["used"]
        for name in ("cebra_behavior_knn", "cebra_time_knn"):
            m = entry["decoders"][name]
            assert m["split"] == "participants"
            assert 0 <= m["f1_weighted"] <= 1 and 0 <= m["leaky_f1_weighted"] <= 1
            assert m["chance_f1_weighted"] is not None and 0 < m["p_value"] <= 1
            assert len(m["null_f1_weighted"]) == (2 if name == "cebra_behavior_knn" else 3)
            # kNN on at most 1500 training rows of the other participants: k = 39.
            assert m["leaky_k_neighbors"] == sqrt_k(1500)
            # The same decoder on this participant alone, blocked splits in time.
            alone = entry["decoders"][f"{name} (within)"]
            assert alone["split"] == "blocks" and alone["chance_f1_weighted"] is not None
        assert (study / entry["report"] / "metrics.json").is_file()
    assert main(["study", "report", str(study)]) == 0
    page = next((study / "derivatives" / "reports").glob("run-*/index.html")).read_text()
    assert "All participants pooled" in page and "leave one participant out" in page
    assert "LEAKY" in page and "Why the LEAKY figure is not evidence" in page


@pytest.mark.slow  # Dask = serial for studies is tested in test_study_dask.py
def test_dask_gives_the_serial_figures(study):
    serial = _decode(study, "--jobs", "1", config="across.yaml")
    dask = _decode(study, "--jobs", "2", config="across.yaml")
    assert dask["where"].startswith("a local cluster of 2")
    for sub in serial["participants"]:
        for name, m in serial["participants"][sub]["decoders"].items():
            d = dask["participants"][sub]["decoders"][name]
            for key in ("f1_weighted", "null_f1_weighted", "leaky_f1_weighted", "confusion"):
                assert d[key] == m[key], (sub, name, key)


class _Counting(BandPowerLogReg):
    """The band-power decoder, noting how many rows each fit trained on."""

    name = "counting"
    fits: list[int] = []  # noqa: RUF012

    def fit_representation(self, X, y):
        _Counting.fits.append(len(X))
        return super().fit_representation(X, y)


def test_honest_fits_never_see_the_test_participant(study, monkeypatch):
    monkeypatch.setitem(DECODERS, "counting", lambda cfg, seed: _Counting())
    _Counting.fits.clear()
    (study.parent / "count.yaml").write_text(
        SMALL
        + "decoders: [counting]\n"
        + "evaluation: {leaky: false, n_permutations: 0, within_participant: false}\n"
    )
    from decoding.study import run_study_decode

    cfg = load_config(study.parent / "count.yaml", preset="rym")
    from data_schema.study import Study

    result = run_study_decode(Study.open(study), cfg, jobs=1)
    rows = {s: e["n_windows"] for s, e in result.participants.items()}
    total = sum(rows.values())
    assert sorted(_Counting.fits) == sorted(total - n for n in rows.values())


def test_one_participant_is_refused_in_one_line(tmp_path, capsys):
    f = simulate_session(
        tmp_path / "p.h5",
        SimulationSettings(seed=1, participant_id="P01", duration=40.0, n_channels=4,
                           sfreq=125.0, recall=15.0, baseline=5.0),
    )  # fmt: skip
    root = tmp_path / "study"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), str(f)]) == 0
    rc = main(["study", "decode", str(root), "--preset", "rym", "--jobs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1
    assert "at least two participants" in err[0]
    assert not (root / "derivatives" / "decoding" / "runs").exists()


def test_samples_input_refuses_the_band_power_decoder():
    from data_schema.errors import ConfigError

    cfg = DecodeConfig()
    cfg.windows.input = "samples"
    with pytest.raises(ConfigError, match=r"bandpower_logreg needs windows\.input: bandpower"):
        cfg.check()


def test_a_participant_without_a_class_gets_a_pooled_leaky_fit_and_a_note():
    """CEBRA's multi-session sampler needs every class in every session (it failed with an
    IndexError on a participant who never pressed 'negative'): the leaky fit falls back to
    one pooled model and says why."""
    from decoding.evaluation import Dataset
    from decoding.study_pooled import leaky_task

    rng = np.random.default_rng(0)
    n = 600
    y = np.concatenate([rng.integers(-1, 2, n), rng.integers(0, 2, n)]).astype(np.int8)
    ds = Dataset(
        X=rng.normal(size=(2 * n, 4)).astype(np.float32),
        y=y,
        times=np.concatenate([np.arange(n), np.arange(n)]) / 125.0,
        session=np.repeat([0, 1], n),
        participant=np.repeat(["A", "B"], n),
        memory=np.full(2 * n, ""),
        session_ids=["a", "b"],
    )
    cfg = load_config(preset="rym")
    cfg.cebra.max_iterations, cfg.cebra.batch_size = 3, 128
    out = leaky_task(ds, "cebra_behavior_knn", cfg)
    assert out["multi_session"] is False and "sub-B lack(s) one" in out["note"]
    assert set(np.unique(out["pred"])) <= {-1, 0, 1}
    # With every class in both, it is RYM's multi-session model.
    ds.y[n:] = rng.integers(-1, 2, n)
    out = leaky_task(ds, "cebra_behavior_knn", cfg)
    assert out["multi_session"] is True and out["note"] is None
