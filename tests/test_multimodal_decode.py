"""The fusion decoders through ``recall-lab decode --preset multimodal`` on simulated sessions
whose voice and face follow the true affect (``recall-lab simulate --voice --face``), with
tiny random AST and ViT models loaded from a models folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

pytestmark = pytest.mark.timeout(600)

QUICK = """
fusion: {max_epochs: 15, patience: 5, d_model: 16, heads: 2, frames_per_window: 2}
evaluation: {n_folds: 3, n_permutations_refit: 2}
"""


def _decode(tmp_path: Path, models: Path, effect: float, capsys, *extra: str) -> dict:
    session = tmp_path / f"mm-{effect:g}.h5"
    args = ["simulate", "--out", str(session), "--voice", "--face", "--duration", "200"]
    assert main([*args, "--channels", "8", "--rate", "128", "--effect", str(effect)]) == 0
    cfg = tmp_path / "quick.yaml"
    cfg.write_text(QUICK)
    capsys.readouterr()
    args = ["decode", str(session), "--preset", "multimodal", "--models", str(models)]
    args += ["--config", str(cfg), "--no-write", "--report", str(tmp_path / "rep"), "--json"]
    assert main([*args, *extra]) == 0
    return json.loads(capsys.readouterr().out)["decoders"]


def test_the_face_carries_the_affect_and_the_fusion_uses_it(tmp_path, fusion_models, capsys):
    d = _decode(tmp_path, fusion_models, 1.0, capsys)
    assert set(d) == {"multimodal_fusion", "eeg_only", "audio_only", "video_only"}
    # the drawn face's mouth follows valence: video alone and the fusion beat their chance
    for name in ("video_only", "multimodal_fusion"):
        assert d[name]["f1_weighted"] > d[name]["chance_f1_weighted"] + 0.1, (name, d[name])


def test_a_session_without_voice_or_face_says_so(tmp_path, fusion_models, capsys):
    session = tmp_path / "eeg.h5"
    assert main(["simulate", "--out", str(session), "--duration", "120", "--channels", "4"]) == 0
    capsys.readouterr()
    args = ["decode", str(session), "--models", str(fusion_models), "--no-write", "--report"]
    args += [str(tmp_path / "r"), "--config", str(tmp_path / "c.yaml")]
    (tmp_path / "c.yaml").write_text("decoders: [video_only]\nwindows: {input: raw}\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "video_only needs the participant's face" in err and "\n" not in err


def test_raw_windows_are_the_eeg_itself(tmp_path):
    from decoding.config import load_config
    from decoding.pipeline import load_session_windows

    session = tmp_path / "s.h5"
    assert main(["simulate", "--out", str(session), "--duration", "120", "--channels", "4"]) == 0
    cfg = load_config(preset="multimodal")
    w = load_session_windows(session, cfg)
    n_len = round(cfg.windows.length * cfg.preprocess.resample)
    assert w.X.shape[1] == 4 * n_len
    assert w.feature_names[:2] == ["Fp1:t0", "Fp1:t1"]
    assert np.isfinite(w.X).all()
