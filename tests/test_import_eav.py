"""Import of an EAV participant folder (EEG .mat, one .mp4 per trial, .wav for speaking
trials; Lee et al., Scientific Data 2024), tested on a small synthetic folder written in
that layout, then decoded with the fusion and its baselines (tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

pytestmark = pytest.mark.timeout(300)

EMOTIONS = ("Neutral", "Sadness", "Anger", "Happiness", "Calmness")
# trial -> (emotion index, task): pairs of listening then speaking, as in EAV
TRIALS = [(e, t) for e in (3, 2, 4, 1, 0, 3, 2, 4) for t in ("Listening", "Speaking")]
SECONDS = 6  # EAV's trials are 20 s; shorter here
RATE = 500
# The fusion with short training on 2 s windows: structure, not accuracy.
QUICK_FUSION = """
fusion: {max_epochs: 3, patience: 2, d_model: 16, heads: 2, frames_per_window: 2}
windows: {length: 2.0, step: 2.0}
evaluation: {n_folds: 3, gap: 0.0, n_permutations_refit: 1}
"""


def _video(path: Path, shade: int, seconds: int = SECONDS, fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            img = np.full((48, 64, 3), shade, np.uint8)
            img[: 4 + i % 40, :4] = 255 - shade  # a moving bar: frames differ
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def write_eav_folder(root: Path, *, mismatch: bool = False) -> Path:
    import scipy.io
    import soundfile

    sub = root / "subject07"
    for d in ("EEG", "Video", "Audio"):
        (sub / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = len(TRIALS)
    seg = rng.normal(0, 10, (SECONDS * RATE, 30, n))
    label = np.zeros((10, n))
    for k, (e, task) in enumerate(TRIALS):
        label[2 * e + (1 if task == "Listening" else 0), k] = 1
        seg[:, 0, k] += 30 * np.sin(2 * np.pi * 10 * np.arange(SECONDS * RATE) / RATE) * (e == 3)
    scipy.io.savemat(sub / "EEG" / "subject07_eeg.mat", {"seg1": seg})
    scipy.io.savemat(sub / "EEG" / "subject07_eeg_label.mat", {"label": label})
    for k, (e, task) in enumerate(TRIALS):
        name = EMOTIONS[e] if not (mismatch and k == 3) else "Happiness"
        _video(sub / "Video" / f"{k + 1:03d}_Trial_{k // 2 + 1:02d}_{task}_{name}.mp4", 40 * e)
        if task == "Speaking":
            t = np.arange(16000 * SECONDS) / 16000
            x = (0.2 * np.sin(2 * np.pi * (120 + 40 * e) * t)).astype(np.float32)
            f = sub / "Audio" / f"{k + 1:03d}_Trial_{k // 2 + 1:02d}_Speaking_{EMOTIONS[e]}_Aud.wav"
            soundfile.write(str(f), x, 16000)
    return sub


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eav")
    sub = write_eav_folder(root)
    out = root / "EAV07.h5"
    assert main(["import", str(sub), "--out", str(out), "--participant", "EAV07"]) == 0
    return sub, out


def test_trials_voice_and_face_arrive_with_their_labels(imported):
    import scipy.io

    from data_schema.reader import read_session

    sub, out = imported
    s = read_session(out)
    assert s.attrs["import_format"] == "eav"
    eeg = s.eeg
    assert eeg.data.shape == (len(TRIALS) * SECONDS * RATE, 30)
    seg = scipy.io.loadmat(sub / "EEG" / "subject07_eeg.mat")["seg1"]
    np.testing.assert_allclose(eeg.data[: SECONDS * RATE], seg[:, :, 0], rtol=1e-6, atol=1e-4)
    markers = [json.loads(e.value) for e in s.events_where(label="phase_start")]
    assert [(m["emotion"], m["kind"]) for m in markers] == [
        (EMOTIONS[e].lower(), t.lower()) for e, t in TRIALS
    ]
    valence = {"happiness": 1, "calmness": 1, "neutral": 0, "sadness": -1, "anger": -1}
    assert all(m["valence"] == valence[m["emotion"]] for m in markers)
    # the voice of the speaking trials, the face of every trial at 30 / 6 = 5 fps
    assert s.streams["audio"].n_samples == len(TRIALS) // 2 * 16000 * SECONDS
    v = s.videos["video"]
    assert v.n_frames == len(TRIALS) * SECONDS * 10 // 6 + len(TRIALS) * ((SECONDS * 10) % 6 != 0)
    starts = [e.timestamp for e in s.events_where(label="phase_start")]
    assert v.timestamps[0] == pytest.approx(starts[0], abs=1e-6)
    assert len(s.events_where(source="recorder", label="gap_start")) >= len(TRIALS) - 1
    assert main(["validate", str(out)]) == 0


def test_a_video_that_contradicts_the_labels_stops_the_import(tmp_path, capsys):
    sub = write_eav_folder(tmp_path, mismatch=True)
    out = tmp_path / "x.h5"
    assert main(["import", str(sub), "--out", str(out), "--participant", "EAV07"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the EEG labels give trial 4" in err and "\n" not in err
    assert not out.exists()


def test_eav_decodes_with_the_fusion_and_its_baselines(imported, fusion_models, tmp_path, capsys):
    models = fusion_models
    cfg = tmp_path / "q.yaml"
    cfg.write_text(QUICK_FUSION)
    capsys.readouterr()
    args = ["decode", str(imported[1]), "--preset", "eav", "--models", str(models)]
    args += ["--config", str(cfg), "--no-write", "--report", str(tmp_path / "r"), "--json"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["decoders"]) == {"multimodal_fusion", "eeg_only", "audio_only", "video_only"}
    # 2 s windows inside 6 s trials: three per trial, labelled by the trial's valence
    assert d["n_windows"] == 3 * len(TRIALS)


def test_eav_decodes_the_papers_five_emotions_with_the_fusion(
    imported, fusion_models, tmp_path, capsys
):
    """``--preset eav_emotion``: the fusion and its baselines on EAV's five classes, named in
    the summary, the metrics and the session file (tiny models: structure, not accuracy)."""
    from decoding.results import read_decoded_trajectory

    models = fusion_models
    cfg = tmp_path / "q.yaml"
    cfg.write_text(QUICK_FUSION)
    session = tmp_path / "EAV07.h5"
    session.write_bytes(imported[1].read_bytes())  # results go into a copy
    capsys.readouterr()
    args = ["decode", str(session), "--preset", "eav_emotion", "--models", str(models)]
    args += ["--config", str(cfg), "--report", str(tmp_path / "r"), "--json"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    names = [e.lower() for e in EMOTIONS]
    assert d["target"] == "emotion" and list(d["class_names"].values()) == names
    # three 2 s windows per 6 s trial, each labelled by its trial's emotion (code = index)
    per_emotion = {e: 3 * sum(1 for x, _ in TRIALS if x == e) for e in range(5)}
    assert d["class_counts"] == {str(e): n for e, n in per_emotion.items()}
    metrics = json.loads(next((tmp_path / "r").glob("run-*/metrics.json")).read_text())
    assert set(metrics) == {"multimodal_fusion", "eeg_only", "audio_only", "video_only"}
    for m in metrics.values():
        assert m["class_names"] == names and np.asarray(m["confusion"]).shape == (5, 5)
        assert np.asarray(m["confusion"]).sum() == 3 * len(TRIALS)
        assert 0.0 <= m["chance_balanced_accuracy"] <= 1.0
    traj = read_decoded_trajectory(session, decoder="video_only")
    assert traj.classes == names and traj.probabilities.shape == (3 * len(TRIALS), 5)
    assert np.allclose(traj.probabilities.sum(axis=1), 1, atol=1e-5)
    assert main(["validate", str(session)]) == 0
