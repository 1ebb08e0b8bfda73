"""``recall-lab study decode`` across imported EAV participants, held out one at a time as in
the multimodal fusion paper (Yin et al., arXiv 2411.00822).

Small synthetic participants in EAV's layout (Lee et al. 2024: EEG .mat files, and for the
fusion one .mp4 per trial and a .wav per speaking trial) go through ``recall-lab import``,
``study add``, ``study decode`` and ``study report`` as a user runs them: the study is planned
by the labels the configuration decodes from (the trials' emotions), every participant is
predicted by models fitted on the others only, and the five classes and their chance (about
1/5, measured, not assumed) reach the summary and the report. A recall session in the same
study is planned by its valence reports as before, and skipped, with why, when the study
decodes trial labels (and the other way round).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from data_schema.study import Study
from decoding.config import load_config
from decoding.decoders import DECODERS, BandPowerLogReg
from decoding.simulate import SimulationSettings, simulate_session
from decoding.study import plan_study_decode

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pandas module was not found:ImportWarning"),
]

EMOTIONS = ("Neutral", "Sadness", "Anger", "Happiness", "Calmness")
NAMES = [e.lower() for e in EMOTIONS]
RATE = 500
SECONDS = 3  # EAV's trials are 20 s
#: Trials per emotion of each participant: unequal, so every held-out fold has its own size.
PER_EMOTION = {1: 2, 2: 3, 3: 4}

# Band power of 1 s windows, five per 3 s trial; one participant held out at a time, and each
# participant also alone in blocks of trials ("... (within)"); cheap label-free permutations.
EMOTION = """
decoders: [bandpower_logreg]
labels: {source: trial_labels, target: emotion}
preprocess: {resample: 100.0, l_freq: 1.0, h_freq: 40.0, line_freq: null, baseline: false,
             bad_channels: false, reference: null}
windows: {input: bandpower, length: 1.0, step: 0.5, use_recall_only: false}
evaluation: {split: participants, n_folds: 3, gap: 0.0, n_permutations: 19, leaky: false,
             within_participant: true}
"""


def write_participant(root: Path, number: int, per_emotion: int, *, media: bool = False) -> Path:
    """``subjectNN`` in EAV's layout: trials of the five emotions in shuffled order, listening
    and speaking in turn; emotion ``e`` adds a 10 Hz rhythm to channel ``e`` (the same in
    every participant, so it carries over to a held-out one). With ``media``: a video per
    trial whose shade follows the emotion, and the voice of speaking trials."""
    import scipy.io

    sub = root / f"subject{number:02d}"
    (sub / "EEG").mkdir(parents=True)
    rng = np.random.default_rng(number)
    order = rng.permutation(np.repeat(np.arange(5), per_emotion))
    n, t = len(order), np.arange(SECONDS * RATE) / RATE
    seg = rng.normal(0, 10, (SECONDS * RATE, 30, n))
    label = np.zeros((10, n))
    tasks = ["Listening" if k % 2 == 0 else "Speaking" for k in range(n)]
    for k, e in enumerate(order):
        label[2 * e + (1 if tasks[k] == "Listening" else 0), k] = 1
        seg[:, e, k] += 30 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi))
    scipy.io.savemat(sub / "EEG" / f"{sub.name}_eeg.mat", {"seg1": seg})
    scipy.io.savemat(sub / "EEG" / f"{sub.name}_eeg_label.mat", {"label": label})
    if media:
        _media(sub, order, tasks)
    return sub


def _media(sub: Path, order: np.ndarray, tasks: list[str]) -> None:
    import av
    import soundfile

    (sub / "Video").mkdir()
    (sub / "Audio").mkdir()
    fps = 10
    for k, (e, task) in enumerate(zip(order, tasks)):
        stem = f"{k + 1:03d}_Trial_{k // 2 + 1:02d}_{task}_{EMOTIONS[e]}"
        with av.open(str(sub / "Video" / f"{stem}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            for i in range(SECONDS * fps):
                img = np.full((32, 32, 3), 40 * e, np.uint8)
                img[: 4 + i % 20, :4] = 255 - 40 * e  # a moving bar: frames differ
                for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        if task == "Speaking":
            t = np.arange(16000 * SECONDS) / 16000
            voice = (0.2 * np.sin(2 * np.pi * (120 + 40 * e) * t)).astype(np.float32)
            soundfile.write(str(sub / "Audio" / f"{stem}_Aud.wav"), voice, 16000)


def _study(root: Path, *, media: bool = False) -> Path:
    files = []
    for number, per_emotion in PER_EMOTION.items():
        sub = write_participant(root / "raw", number, per_emotion, media=media)
        label = f"EAV{number:02d}"
        out = root / f"{label}.h5"
        assert main(["import", str(sub), "--out", str(out), "--participant", label]) == 0
        files.append(str(out))
    study = root / "study"
    assert main(["study", "init", str(study), "--task", "eav"]) == 0
    assert main(["study", "add", str(study), *files]) == 0
    return study


@pytest.fixture(scope="module")
def eav_study(tmp_path_factory) -> Path:
    return _study(tmp_path_factory.mktemp("eav-study"))


def _decode(study: Path, config: str, *extra: str) -> tuple[dict, str]:
    cfg = study.parent / "decode.yaml"
    cfg.write_text(config)
    assert main(["study", "decode", str(study), "--config", str(cfg), "--quiet", *extra]) == 0
    runs = sorted((study / "derivatives" / "decoding" / "runs").glob("run-*"))
    return json.loads((runs[-1] / "summary.json").read_text()), str(runs[-1])


def test_eav_participants_are_decoded_across_participants_on_five_emotions(eav_study, capsys):
    capsys.readouterr()
    summary, _ = _decode(eav_study, EMOTION, "--jobs", "2")
    out = capsys.readouterr().out
    assert "3 participant(s) to decode" in out and "0 file(s) left out" in out, out
    assert "emotion: neutral, sadness, anger, happiness, calmness" in out
    assert summary["where"].startswith("a local cluster of 2")
    assert summary["skipped"] == {}
    assert summary["target"] == "emotion" and summary["class_names"] == NAMES
    assert set(summary["participants"]) == {"EAV01", "EAV02", "EAV03"}

    pooled = summary["across_participants"]
    assert pooled["target"] == "emotion" and pooled["class_names"] == NAMES
    m = pooled["decoders"]["bandpower_logreg"]
    # Five balanced classes: the measured chance is near 1/5, not valence's 1/3.
    assert 0.12 < m["chance_balanced_accuracy"] < 0.3, m
    assert 0.1 < m["chance_f1_weighted"] < 0.3, m
    assert np.asarray(m["confusion"]).shape == (5, 5)
    # The rhythm is the same in every participant: a held-out one is decoded above chance.
    assert m["balanced_accuracy"] > m["chance_balanced_accuracy"] + 0.3, m

    for sub, entry in summary["participants"].items():
        n_trials = 5 * PER_EMOTION[int(sub[-2:])]
        assert entry["status"] == "ok" and entry["n_windows"] == 5 * n_trials
        for name, split in (("bandpower_logreg", "participants"), ("bandpower_logreg (within)",
                                                                    "blocks")):  # fmt: skip
            d = entry["decoders"][name]
            assert d["split"] == split
            assert d["class_names"] == NAMES and d["classes"] == [0, 1, 2, 3, 4]
            cm = np.asarray(d["confusion"])
            assert cm.shape == (5, 5) and cm.sum() == 5 * n_trials
            assert 0.05 < d["chance_balanced_accuracy"] < 0.35, (sub, name, d)
            assert len(d["null_f1_weighted"]) == 19

    assert main(["study", "report", str(eav_study)]) == 0
    report = next((eav_study / "derivatives" / "reports").glob("run-*"))
    page = (report / "index.html").read_text()
    assert "Classes (emotion, 5): neutral, sadness, anger, happiness, calmness" in page
    assert "1/5 = 0.20" in page and "leave one participant out" in page
    assert (report / "confusion_bandpower_logreg.png").stat().st_size > 0
    group = json.loads((report / "group.json").read_text())["bandpower_logreg"]
    assert group["n"] == 3 and 0.1 < group["mean_chance"] < 0.3, group


class _Recording(BandPowerLogReg):
    """The band-power decoder, keeping every row it was trained on."""

    name = "recording"
    fits: list[np.ndarray] = []  # noqa: RUF012

    def fit_representation(self, X, y):
        _Recording.fits.append(np.asarray(X, np.float32).copy())
        return super().fit_representation(X, y)


def test_a_held_out_participant_is_never_in_training(eav_study, monkeypatch):
    from decoding.pipeline import load_session_windows

    monkeypatch.setitem(DECODERS, "recording", lambda cfg, seed: _Recording())
    _Recording.fits.clear()
    cfg_file = eav_study.parent / "recording.yaml"
    cfg_file.write_text(
        EMOTION.replace("[bandpower_logreg]", "[recording]")
        .replace("n_permutations: 19", "n_permutations: 0")
        .replace("within_participant: true", "within_participant: false")
    )
    cfg = load_config(cfg_file)
    study = Study.open(eav_study)
    plans, skipped = plan_study_decode(study, cfg)
    assert [p.subject for p in plans] == ["EAV01", "EAV02", "EAV03"] and skipped == {}
    from decoding.study import run_study_decode

    result = run_study_decode(study, cfg, jobs=1)
    # Each participant's rows, as the pipeline cuts them.
    rows = {
        p.subject: {r.tobytes() for r in load_session_windows(p.paths[0], cfg).X.astype(np.float32)}
        for p in plans
    }
    assert len(_Recording.fits) == 3
    held_out = []
    for X in _Recording.fits:
        seen = {r.tobytes() for r in X}
        out = [s for s, mine in rows.items() if not seen & mine]
        assert len(out) == 1, "a fit saw every participant"
        (sub,) = out
        held_out.append(sub)
        assert seen == set().union(*(mine for s, mine in rows.items() if s != sub))
    assert sorted(held_out) == ["EAV01", "EAV02", "EAV03"]
    assert {s: e["n_windows"] for s, e in result.participants.items()} == {
        s: len(r) for s, r in rows.items()
    }


def test_the_same_trials_decode_as_valence_with_three_classes(eav_study):
    config = EMOTION.replace("target: emotion", "target: valence").replace(
        "within_participant: true", "within_participant: false"
    )
    summary, _ = _decode(eav_study, config, "--jobs", "1")
    assert summary["target"] == "valence"
    assert summary["class_names"] == ["negative", "neutral", "positive"]
    assert len(summary["participants"]) == 3 and summary["skipped"] == {}
    for entry in summary["participants"].values():
        d = entry["decoders"]["bandpower_logreg"]
        assert d["classes"] == [-1, 0, 1] and np.asarray(d["confusion"]).shape == (3, 3)


def test_sessions_are_planned_by_the_labels_the_config_decodes_from(eav_study, tmp_path, capsys):
    """A recall session (valence reports) and imported EAV participants (labelled trials) in
    one study: each configuration plans the sessions that hold its labels and names, for the
    others, what they lack and what they hold instead."""
    import shutil

    root = tmp_path / "mixed"
    shutil.copytree(eav_study, root, ignore=shutil.ignore_patterns("derivatives"))
    recall = simulate_session(
        tmp_path / "recall.h5",
        SimulationSettings(seed=1, participant_id="P01", duration=40.0, n_channels=4,
                           sfreq=100.0, recall=15.0, baseline=5.0),
    )  # fmt: skip
    assert main(["study", "add", str(root), str(recall)]) == 0
    study = Study.open(root)
    eav_files = {str(p.relative(root)) for p in study.sessions() if p.subject != "P01"}

    # Valence reports, as before (no configuration, or the default one): the recall session.
    for cfg in (None, load_config()):
        plans, skipped = plan_study_decode(study, cfg)
        assert [p.subject for p in plans] == ["P01"]
        assert set(skipped) == eav_files
        for why in skipped.values():
            assert why.startswith("no valence reports: nothing to learn or test labels from")
            assert "labelled trial(s) (labels.source: trial_labels" in why

    # Trial labels (the eav and eav_emotion presets): the EAV participants.
    for preset in ("eav", "eav_emotion"):
        plans, skipped = plan_study_decode(study, load_config(preset=preset))
        assert [p.subject for p in plans] == ["EAV01", "EAV02", "EAV03"]
        (why,) = skipped.values()
        wanted = "an emotion" if preset == "eav_emotion" else "a valence"
        assert f"carries {wanted}" in why or "names one of neutral" in why, why
        assert "valence report(s) (labels.source: reports)" in why

    # Clip ratings: nobody.
    plans, skipped = plan_study_decode(study, load_config(preset="music"))
    assert plans == [] and all(w.startswith("no rated listening clips") for w in skipped.values())

    capsys.readouterr()
    assert main(["study", "status", str(root)]) == 0
    text = capsys.readouterr().out
    assert "labelled trial(s)" in text and "valence report(s)" in text
    assert main(["study", "status", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    by = {r["subject"]: r for r in rows}
    assert by["EAV02"]["emotion_trials"] == by["EAV02"]["labelled_trials"] == 15
    assert by["P01"]["labelled_trials"] == 0 and by["P01"]["valence_reports"] > 0


def test_a_study_without_the_labels_is_refused_in_one_line(tmp_path, capsys):
    recall = simulate_session(
        tmp_path / "recall.h5",
        SimulationSettings(seed=1, participant_id="P01", duration=40.0, n_channels=4,
                           sfreq=100.0, recall=15.0, baseline=5.0),
    )  # fmt: skip
    root = tmp_path / "study"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), str(recall)]) == 0
    capsys.readouterr()
    rc = main(["study", "decode", str(root), "--preset", "eav_emotion", "--jobs", "1"])
    cap = capsys.readouterr()
    assert rc != 0
    assert "left out sub-P01" in cap.out and "no trials labelled with an emotion" in cap.out
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and "no session with trials labelled with an emotion" in err[0], err
    assert not (root / "derivatives" / "decoding" / "runs").exists()


# The paper's decoders with tiny models and short training: structure, not accuracy.
FUSION = """
fusion: {max_epochs: 2, patience: 1, d_model: 16, heads: 2, frames_per_window: 2}
windows: {length: 1.0, step: 1.0}
evaluation: {split: participants, n_folds: 3, gap: 0.0, n_permutations_refit: 1,
             within_participant: WITHIN}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "names", "within"),
    [("eav_emotion", NAMES, "true"), ("eav", ["negative", "neutral", "positive"], "false")],
)
def test_the_fusion_and_its_baselines_decode_held_out_participants(
    tmp_path, fusion_models, capsys, preset, names, within
):
    study = _study(tmp_path, media=True)
    capsys.readouterr()
    summary, _ = _decode(
        study, FUSION.replace("WITHIN", within), "--preset", preset, "--models", str(fusion_models),
        "--jobs", "2",
    )  # fmt: skip
    out = capsys.readouterr().out
    # Per held-out participant and decoder one fit and one refit with shifted labels; within
    # each participant 3 folds x (1 + 1) per decoder.
    fits = 4 * 3 * 2 + (4 * 3 * 3 * 2 if within == "true" else 0)
    assert f"about {fits} model fits" in out, out
    decoders = {"multimodal_fusion", "eeg_only", "audio_only", "video_only"}
    pooled = summary["across_participants"]
    assert set(pooled["decoders"]) == decoders and pooled["class_names"] == names
    for m in pooled["decoders"].values():
        assert m["n_permutations"] == 1 and m["chance_balanced_accuracy"] is not None
        assert np.asarray(m["confusion"]).shape == (len(names), len(names))
    for sub, entry in summary["participants"].items():
        assert entry["status"] == "ok", entry
        n_windows = SECONDS * 5 * PER_EMOTION[int(sub[-2:])]
        for name in decoders:
            d = entry["decoders"][name]
            assert d["class_names"] == names and len(d["null_f1_weighted"]) == 1
            assert np.asarray(d["confusion"]).sum() == n_windows
            if within == "true":
                assert entry["decoders"][f"{name} (within)"]["class_names"] == names
    assert main(["study", "report", str(study)]) == 0
