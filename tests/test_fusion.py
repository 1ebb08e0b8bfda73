"""The multimodal fusion decoder (EEGformer + AST + ViT, shared attention over the tokens).

Tiny random AST and ViT written with ``generation.tiny.make_tiny_models`` and loaded back
through the decoder's own path (the models folder); small EEGformers and few epochs on simulated
windows whose label changes the EEG's 10 Hz power, the voice's pitch and loudness, and the
frames' brightness, so the whole file runs in well under a minute and a half on two cores:
real torch and transformers, no mocks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from data_schema.errors import ConfigError, RecallLabError  # noqa: E402
from decoding.fusion import (  # noqa: E402
    FUSION_DECODERS,
    FusionConfig,
    MultimodalFusion,
    fusion_decoder,
    load_backbone,
    parse_raw_layout,
    raw_feature_names,
)
from generation.models import ModelMissingError  # noqa: E402
from generation.tiny import make_tiny_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N_CH, N_T, EEG_RATE = 6, 128, 128  # 1 s of 6-channel EEG
AUDIO_N = 4000  # 0.25 s of voice at 16 kHz
FRAMES, SIDE = 2, 32  # frames per window, frame height and width
NAMES = raw_feature_names([f"ch{i}" for i in range(N_CH)], N_T)
SMALL = {
    "d_model": 16,
    "heads": 2,
    "eeg_filters": 4,
    "lr": 3e-3,
    "max_epochs": 25,
    "patience": 6,
    "frames_per_window": FRAMES,
    "device": "cpu",
}


def simulate(
    seed: int, n: int = 300, *, eeg: bool = True, audio: bool = True, video: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Windows of three classes (-1/0/1, balanced, shuffled). With an effect the label
    raises the 10 Hz power of channels 0-1, the pitch (220/440/880 Hz) and loudness of the
    voice, and the frames' brightness; without, every modality is independent of it."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.resize([-1, 0, 1], n))
    t = np.arange(N_T) / EEG_RATE
    X = rng.normal(size=(n, N_CH, N_T)).astype(np.float32)
    if eeg:
        X[:, :2] += (y[:, None, None] + 1.0) * np.sin(2 * np.pi * 10 * t)
    ta = np.arange(AUDIO_N) / 16000
    pitch = np.where(y == -1, 220.0, np.where(y == 0, 440.0, 880.0)) if audio else np.full(n, 440.0)
    loud = 0.1 + 0.2 * (y + 1) if audio else np.full(n, 0.3)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    A = loud[:, None] * np.sin(2 * np.pi * pitch[:, None] * ta + phase)
    A = (A + 0.05 * rng.normal(size=A.shape)).astype(np.float32)
    bright = 128.0 + (50.0 * y if video else 0.0 * y)
    V = bright[:, None, None, None, None] + rng.normal(0, 30, (n, FRAMES, SIDE, SIDE, 3))
    side = {
        "audio": A,
        "video": np.clip(V, 0, 255).astype(np.uint8),
        "video_present": np.ones(n, bool),
    }
    return X.reshape(n, -1), y, side


def rows(side: dict[str, np.ndarray], sel: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[sel] for k, v in side.items()}


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fusion") / "models"
    make_tiny_models(root, ["audio-tagger", "face-vit"])
    return root


def decoder(name: str, models: Path | None, seed: int = 0, **over: object) -> MultimodalFusion:
    settings = {**SMALL, **over}
    if models is not None:
        settings["models"] = str(models)
    dec = fusion_decoder(name, settings, seed)
    dec.feature_names = NAMES
    return dec


def train_test(
    dec: MultimodalFusion, data: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]
) -> float:
    """Fit on the first 70 % (two sessions, so each gets a validation block), test on the
    rest; balanced accuracy of the test rows."""
    X, y, side = data
    n_train = int(0.7 * len(y))
    groups = np.repeat([0, 1], [n_train // 2, n_train - n_train // 2])
    dec.fit(X[:n_train], y[:n_train], rows(side, slice(0, n_train)), groups=groups)
    return balanced_accuracy(
        y[n_train:], dec.predict(X[n_train:], rows(side, slice(n_train, None)))
    )


@pytest.fixture(scope="module")
def trained(models: Path) -> tuple[MultimodalFusion, float]:
    """multimodal_fusion fitted on windows with an effect in every modality."""
    dec = decoder("multimodal_fusion", models)
    return dec, train_test(dec, simulate(0))


# layout and configuration --------------------------------------------------------------------
def test_raw_layout_round_trip_and_bad_names() -> None:
    names = raw_feature_names(["Fp1", "a:b"], 3)
    assert names[:4] == ["Fp1:t0", "Fp1:t1", "Fp1:t2", "a:b:t0"]
    assert parse_raw_layout(names) == (["Fp1", "a:b"], 3)
    for bad in (["Fp1:s0"], ["Fp1:t0", "Fp1:t2"], ["Fp1:t0", "Fz:t0", "Fp1:t1", "Fz:t1"], []):
        with pytest.raises(RecallLabError) as err:
            parse_raw_layout(bad)
        assert "\n" not in str(err.value)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"fusion\.d_model"):
        FusionConfig(d_model=10, heads=4).check()
    with pytest.raises(ConfigError, match="modality_dropout"):
        MultimodalFusion({"modality_dropout": 1.0})
    with pytest.raises(ConfigError, match="unknown field"):
        MultimodalFusion({"depth": 2})
    with pytest.raises(ConfigError, match="modalities"):
        MultimodalFusion(modalities=("eeg", "smell"))
    assert set(FUSION_DECODERS) == {"multimodal_fusion", "eeg_only", "audio_only", "video_only"}
    assert MultimodalFusion(modalities=("video", "eeg")).name == "fusion_eeg_video"


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, decoding.fusion; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == ["False", "False"]


# shapes ---------------------------------------------------------------------------------------
def test_branch_shapes(models: Path) -> None:
    from decoding._fusion_nets import EEGFormer, PretrainedEncoder

    torch.manual_seed(0)
    net = EEGFormer(N_CH, d_model=16, heads=2, filters=4, segments=3).eval()
    for samples in (N_T, 77):  # any window length: time is pooled adaptively
        assert net(torch.randn(5, N_CH, samples)).shape == (5, 16)

    _, _, side = simulate(1, n=4)
    base, extractor, folder = load_backbone("audio", models)
    assert folder.name == "ast-audioset"
    feats = extractor(list(side["audio"]), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        assert PretrainedEncoder(base, "audio")(feats["input_values"]).shape == (4, 32)
    base, processor, folder = load_backbone("video", models)
    assert folder.name == "vit-face-expression"
    frames = list(side["video"].reshape(-1, SIDE, SIDE, 3))
    pix = processor(images=frames, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = PretrainedEncoder(base, "video")(pix.view(4, FRAMES, *pix.shape[1:]))
    assert out.shape == (4, 32)


def test_fused_shapes_and_missing_modalities(trained: tuple[MultimodalFusion, float]) -> None:
    dec, _ = trained
    X, _, side = simulate(2, n=12)
    tokens = dec.modality_tokens(X, side)
    assert {k: v.shape for k, v in tokens.items()} == {m: (12, 16) for m in dec.modalities}
    Z = dec.transform(X, side)
    assert Z.shape == (12, 16) and Z.dtype == np.float32
    p = dec.predict_proba(X, side)
    assert p.shape == (12, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)

    # No audio in rows 0-5, no video in rows 3-8: rows 3-5 have EEG only.
    side["audio"][:6] = np.nan
    side["video_present"][3:9] = False
    tokens = dec.modality_tokens(X, side)
    assert np.isnan(tokens["audio"][:6]).all() and np.isfinite(tokens["audio"][6:]).all()
    assert np.isnan(tokens["video"][3:9]).all() and np.isfinite(tokens["eeg"]).all()
    p_missing = dec.predict_proba(X, side)
    assert np.isfinite(p_missing).all() and np.allclose(p_missing.sum(axis=1), 1, atol=1e-5)
    assert not np.allclose(p_missing[:9], p[:9])  # the missing token is not the real one
    assert np.allclose(p_missing[9:], p[9:], atol=1e-6)  # rows are independent


# learning -------------------------------------------------------------------------------------
def test_beats_chance_with_an_effect_and_not_without(
    trained: tuple[MultimodalFusion, float], models: Path
) -> None:
    dec, score = trained
    assert score > 0.8, score  # chance is 1/3 (three balanced classes)
    assert dec.n_validation_rows > 0 and len(dec.val_history) == len(dec.loss_history)
    null = train_test(
        decoder("multimodal_fusion", models),
        simulate(3, eeg=False, audio=False, video=False),
    )
    assert null < 0.5, null


def test_eeg_only_ignores_audio_and_video(models: Path) -> None:
    dec = decoder("eeg_only", None)  # needs no models folder
    assert dec.side_inputs == ()
    X, y, _ = simulate(4, n=150, audio=False, video=False)
    dec.fit(X, y)
    _, _, side_a = simulate(5, n=150)
    _, _, side_b = simulate(6, n=150)
    side_b["audio"][::2] = np.nan
    side_b["video_present"][1::2] = False
    Z = dec.transform(X)
    assert np.array_equal(Z, dec.transform(X, side_a))
    assert np.array_equal(Z, dec.transform(X, side_b))


def test_fusion_reads_video_that_eeg_only_cannot(models: Path) -> None:
    data = simulate(7, eeg=False, audio=False, video=True)
    fused = train_test(decoder("multimodal_fusion", models), data)
    eeg_only = train_test(decoder("eeg_only", None), data)
    assert fused > 0.8 and eeg_only < 0.5 and fused > eeg_only + 0.3, (fused, eeg_only)


def test_seeded_fits_are_identical(models: Path) -> None:
    X, y, side = simulate(8, n=120)
    Z = [
        decoder("video_only", models, max_epochs=3).fit(X, y, side).transform(X, side)
        for _ in range(2)
    ]
    assert np.array_equal(Z[0], Z[1])


# persistence and fine-tuning -----------------------------------------------------------------
def test_save_load_round_trip(
    trained: tuple[MultimodalFusion, float], models: Path, tmp_path: Path
) -> None:
    dec, _ = trained
    X, _, side = simulate(9, n=20)
    (file,) = dec.save(tmp_path / "model")
    assert file.name == "model.multimodal_fusion.pt"
    back = MultimodalFusion.load(file, device="cpu")
    assert back.name == dec.name and back.classes_.tolist() == [-1, 0, 1]
    assert np.allclose(back.predict_proba(X, side), dec.predict_proba(X, side), atol=1e-6)
    with pytest.raises(ModelMissingError, match="hf download"):
        MultimodalFusion.load(file, models=tmp_path / "elsewhere")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(RecallLabError, match="cannot read"):
        MultimodalFusion.load(tmp_path / "junk.pt")


def test_fine_tuned_layers_train_and_round_trip(models: Path, tmp_path: Path) -> None:
    X, y, side = simulate(10, n=90)
    dec = decoder(
        "multimodal_fusion",
        models,
        max_epochs=2,
        audio_trainable_layers=1,
        video_trainable_layers=1,
    )
    before = {m: load_backbone(m, models)[0].state_dict() for m in ("audio", "video")}
    dec.fit(X, y, side)
    for m, enc in dec.backbones.items():
        trainable = {k for k, p in enc.base.named_parameters() if p.requires_grad}
        assert trainable and all(k.startswith(("layers.1.", "layernorm.")) for k in trainable)
        after = enc.base.state_dict()
        assert any(not torch.equal(after[k], before[m][k]) for k in trainable)
        assert all(torch.equal(after[k], before[m][k]) for k in after if k not in trainable)
    (file,) = dec.save(tmp_path / "ft")
    back = MultimodalFusion.load(file, device="cpu")
    assert np.allclose(back.transform(X, side), dec.transform(X, side), atol=1e-5)


# bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "repo"),
    [("audio_only", "MIT/ast-finetuned-audioset-10-10-0.4593"), ("video_only", "trpakov/")],
)
def test_missing_model_folder(name: str, repo: str, tmp_path: Path) -> None:
    X, y, side = simulate(11, n=30)
    with pytest.raises(ModelMissingError) as err:
        decoder(name, tmp_path / "no-models").fit(X, y, side)
    assert f"hf download {repo}" in str(err.value) and "\n" not in str(err.value)


def test_bad_input_is_one_line(trained: tuple[MultimodalFusion, float], models: Path) -> None:
    dec, _ = trained
    X, y, side = simulate(12, n=30)
    bad: list[tuple[object, ...]] = [
        (dec.transform, X),  # no side inputs for a decoder that reads audio and video
        (dec.transform, X[:, :-1], side),
        (dec.transform, X, {**side, "audio": side["audio"][:5]}),
        (dec.transform, X, {**side, "video": side["video"].astype(np.float32)}),
        (dec.transform, X, {**side, "video_present": side["video_present"].astype(int)}),
    ]
    partly_nan = side["audio"].copy()
    partly_nan[0, :10] = np.nan
    bad.append((dec.transform, X, {**side, "audio": partly_nan}))
    wrong_names = decoder("eeg_only", None)
    wrong_names.feature_names = [f"ch{i}:alpha" for i in range(X.shape[1])]
    bad.append((wrong_names.fit_representation, X, y))
    bad.append((decoder("eeg_only", None).fit_representation, X, np.zeros(len(y))))
    bad.append((MultimodalFusion().transform, X, side))  # not fitted
    for call, *args in bad:
        with pytest.raises(RecallLabError) as err:
            call(*args)
        assert "\n" not in str(err.value), str(err.value)
