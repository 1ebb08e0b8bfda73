"""Music as a teacher for EEG, end to end: a simulated session with a listening block goes
through ``recall-lab decode --preset music``, ``recall-lab retrieve`` and retrieval-driven
``recall-lab generate --melody-library``, with tiny random models loaded from a models
folder as a user's would be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

QUICK = """
music_supervised:
  max_epochs: 40
  patience: 8
  lr: 0.003
  lstm1: 32
  lstm2: 32
  representation: 32
evaluation:
  n_permutations: 19
  n_permutations_refit: 3
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models") / "models"
    assert main(["models", "make-tiny", str(d)]) == 0
    return d


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("cfg") / "quick.yaml"
    f.write_text(QUICK)
    return f


def _simulate(folder: Path, effect: float, seed: int) -> Path:
    out = folder / f"listen-{effect:g}-{seed}.h5"
    args = ["simulate", "--out", str(out), "--listening", "--clips", "6", "--clip-seconds", "20"]
    args += ["--duration", "250", "--channels", "8", "--rate", "128", "--effect", str(effect)]
    assert main([*args, "--seed", str(seed)]) == 0
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    return _simulate(tmp_path_factory.mktemp("sim"), 1.0, 0)


def _decode(session: Path, models: Path, quick: Path, capsys) -> dict:
    capsys.readouterr()
    args = ["decode", str(session), "--preset", "music", "--models", str(models)]
    args += ["--config", str(quick), "--no-write", "--report", str(session.parent / "rep")]
    rc = main([*args, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def test_simulate_listening_writes_the_library_beside(session):
    from data_schema.reader import read_session
    from decoding.listening import clip_plays
    from protocols.library import load_library

    lib = load_library(session.with_suffix(".library"))
    assert len(lib) == 6
    s = read_session(session)
    plays = clip_plays(s)
    assert sorted(p.clip for p in plays) == sorted(lib.ids)
    for p in plays:  # the participant's rating agrees with the clip's norm (known effect)
        assert p.sha256 == lib.get(p.clip).sha256
        assert (p.valence > 5) == (lib.get(p.clip).valence > 5)
        assert p.end - p.start == pytest.approx(20.0, abs=0.01)
    assert s.memories  # recall phases follow the listening block


def test_decode_music_beats_chance_with_an_effect_and_not_without(
    session, models, quick, capsys, tmp_path
):
    effect = _decode(session, models, quick, capsys)["decoders"]["music_supervised"]
    assert effect["split"] == "memories"  # whole clips held out
    assert effect["n_permutations"] == 3
    assert effect["balanced_accuracy"] > 0.8
    assert effect["f1_weighted"] > effect["chance_f1_weighted"] + 0.2

    null = _simulate(tmp_path, 0.0, 1)
    scores = _decode(null, models, quick, capsys)["decoders"]["music_supervised"]
    # No effect in the EEG: held-out clips are decoded at chance. (Six clips: one wrong clip
    # moves balanced accuracy by about 1/6, so the band is wide.)
    assert 0.2 < scores["balanced_accuracy"] < 0.75


def test_retrieve_reports_track_and_emotion_retrieval_with_chance(session, models, quick, capsys):
    capsys.readouterr()
    args = ["retrieve", str(session), "--models", str(models), "--config", str(quick)]
    rc = main([*args, "--permutations", "49", "--json", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    r = json.loads(out)
    assert r["k"] == 6 and len(r["gallery"]) == 6 and r["folds"] == 6
    for task in ("track_retrieval", "emotion_retrieval"):
        t = r[task]
        assert t["n_permutations"] == 49 and t["n_queries"] > 60
        for key in ("precision_at_k", "mean_average_precision", "chance_mean_average_precision"):
            assert 0.0 <= t[key] <= 1.0
    # With k equal to the library size, P@k is the share of relevant clips: fixed by the
    # labels, so chance equals it exactly; mAP is what the ranking earns.
    assert r["track_retrieval"]["precision_at_k"] == pytest.approx(1 / 6)
    # The shared space orders clips by valence: emotion retrieval beats its chance level.
    e = r["emotion_retrieval"]
    assert e["mean_average_precision"] > e["chance_mean_average_precision"]
    assert e["p_value"] <= 0.1


def test_retrieval_metrics_by_hand():
    from decoding.retrieval import average_precision, precision_at_k

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7]])
    relevant = np.array([[False, False, True], [True, False, True]])
    assert precision_at_k(scores, relevant, 1).tolist() == [0.0, 0.0]
    assert precision_at_k(scores, relevant, 2).tolist() == [0.5, 0.5]
    # query 0: relevant at rank 2 -> AP 1/2; query 1: ranks 2 and 3 -> (1/2 + 2/3) / 2
    assert average_precision(scores, relevant).tolist() == pytest.approx([0.5, (0.5 + 2 / 3) / 2])


def test_generate_picks_each_segment_melody_from_the_library(session, models, tmp_path):
    out = tmp_path / "gen"
    args = ["generate", str(session), "--models", str(models), "--out", str(out)]
    args += ["--memory", "m01", "--melody-library", str(session.with_suffix(".library"))]
    args += ["--melody-mix", "0.7", "--duration", "4", "--min-segment", "1", "--steps", "1"]
    args += ["--fps", "8", "--crossfade", "0.5", "--transition", "0.5", "--animation", "none"]
    rc = main([*args, "--no-evaluate", "--quiet"])
    assert rc == 0
    manifest = json.loads((out / "run-001" / "m01" / "manifest.json").read_text())
    chosen = manifest["melody_library"]
    from protocols.library import load_library

    ids = load_library(session.with_suffix(".library")).ids
    assert chosen["mix"] == 0.7
    assert [c["segment"] for c in chosen["segments"]] == [
        s["index"] for s in sorted(manifest["segments"], key=lambda s: s["index"])
    ]
    for c in chosen["segments"]:
        assert c["clip"] in ids and -1.0 <= c["score"] <= 1.0
        assert c["score"] >= c["runner_up_score"] and c["eeg_windows"] >= 1


def test_music_decoding_bad_input_is_one_line(session, models, tmp_path, capsys):
    plain = tmp_path / "plain.h5"
    assert main(["simulate", "--out", str(plain), "--duration", "60", "--channels", "4"]) == 0
    capsys.readouterr()
    assert main(["decode", str(plain), "--preset", "music", "--models", str(models)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no listening block" in err and "\n" not in err
    # a library that is not the one the session played
    other = tmp_path / "other.library"
    from decoding.simulate_listening import ListeningSettings, write_library

    write_library(other, ListeningSettings(n_clips=6, clip_seconds=20.0), seed=99)
    args = ["retrieve", str(session), "--models", str(models), "--library", str(other)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "SHA-256 differs" in err and "\n" not in err
    # no audio tagger in the models folder
    assert main(["retrieve", str(session), "--models", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "hf download MIT/ast-finetuned-audioset" in err


def test_clips_of_one_class_only_give_one_line(models, tmp_path, capsys):
    import soundfile

    from decoding.simulate import SimulationSettings, simulate_session
    from decoding.simulate_listening import ListeningSettings, synthesize_clip
    from protocols.library import load_library, write_library

    folder = tmp_path / "happy.library"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):  # every clip pleasant: the ratings give one class
        soundfile.write(str(folder / f"h{i}.wav"), synthesize_clip(8.8, 5, 6.0, rng), 22050)
        rows.append({"id": f"h{i}", "file": f"h{i}.wav", "valence": 8.8, "arousal": 5})
    write_library(folder, rows)
    settings = SimulationSettings(
        duration=120, sfreq=128, n_channels=4, listening=ListeningSettings(4, 6.0)
    )
    session = simulate_session(tmp_path / "happy.h5", settings, load_library(folder))
    capsys.readouterr()
    assert main(["decode", str(session), "--preset", "music", "--models", str(models)]) == 2
    err = capsys.readouterr().err.strip()
    assert "only one class" in err and "\n" not in err
