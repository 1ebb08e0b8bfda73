"""The music-supervised affect encoder: DE features, the torch parts, and the decoder.

Small models (config overrides) on synthetic DE features, so the whole file runs in seconds on
two cores: real torch training, no mocks.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from data_schema.errors import ConfigError, RecallLabError  # noqa: E402
from decoding.music_supervised import (  # noqa: E402
    DE_BANDS,
    MusicSupervised,
    MusicSupervisedConfig,
    _band_filtered,
    de_feature_names,
    de_features,
    parse_de_layout,
    split_validation,
)

REPO = Path(__file__).resolve().parents[1]
N_CH, BANDS, N_SEC, MUSIC_D = 8, list(DE_BANDS), 3, 16
NAMES = de_feature_names([f"ch{i}" for i in range(N_CH)], BANDS, N_SEC)
SMALL = {
    "lstm1": 16,
    "lstm2": 16,
    "representation": 16,
    "shared": 8,
    "discriminator_hidden": 16,
    "lr": 3e-3,
    "max_epochs": 40,
    "patience": 8,
    "device": "cpu",
}


def synthetic(seed: int, n: int = 400, signal: bool = True) -> tuple[np.ndarray, ...]:
    """DE-like features whose channels 0 and 1 shift with valence, and music embeddings whose
    first dimensions carry it too; ``signal=False``: labels independent of both."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat([-1, 1], n // 2))
    X = rng.normal(size=(n, N_CH, len(BANDS) * N_SEC)).astype(np.float32)
    M = rng.normal(size=(n, MUSIC_D)).astype(np.float32)
    if signal:
        X[:, :2, :] += 0.6 * y[:, None, None]
        M[:, :4] += 0.8 * y[:, None]
    return X.reshape(n, -1), y, M


def decoder(seed: int = 0, **overrides: object) -> MusicSupervised:
    dec = MusicSupervised({**SMALL, **overrides}, seed=seed)
    dec.feature_names = NAMES
    return dec


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


@pytest.fixture(scope="module")
def trained() -> tuple[MusicSupervised, tuple[np.ndarray, ...]]:
    """A decoder trained on the first 70 % of a synthetic set with music."""
    X, y, M = synthetic(0)
    n_train = int(0.7 * len(y))
    dec = decoder().fit_representation(X[:n_train], y[:n_train], {"music": M[:n_train]})
    return dec, (X, y, M, n_train)


# differential entropy ------------------------------------------------------------------------
def test_de_of_a_sine_is_highest_in_its_band() -> None:
    sf, seconds = 128.0, 40
    t = np.arange(int(sf * seconds)) / sf
    rng = np.random.default_rng(1)
    data = 1e-7 * rng.normal(size=(2, t.size))
    data[0] += 1e-5 * np.sin(2 * np.pi * 10 * t)  # alpha (7-15 Hz)
    data[1] += 1e-5 * np.sin(2 * np.pi * 5.5 * t)  # theta (4-7 Hz)
    starts = np.arange(0, t.size - 3 * 128 + 1, 64)
    de = de_features(data, sf, starts)
    assert de.shape == (starts.size, 2, len(BANDS), 3) and de.dtype == np.float32
    assert (de[:, 0].argmax(axis=1) == BANDS.index("alpha")).all()
    assert (de[:, 1].argmax(axis=1) == BANDS.index("theta")).all()


def test_de_of_white_noise_matches_the_band_limited_variance() -> None:
    sf, sigma = 256.0, 2.0
    rng = np.random.default_rng(2)
    data = sigma * rng.normal(size=(3, int(sf * 120)))
    starts = np.arange(0, data.shape[1] - 3 * 256 + 1, 256)
    de = de_features(data, sf, starts)
    spectrum = np.fft.rfft(data, axis=1)
    freqs = np.fft.rfftfreq(data.shape[1], 1 / sf)
    for b, (lo, hi) in enumerate(DE_BANDS.values()):
        # The band-limited signal by an ideal (brick-wall) filter, independent of ours.
        limited = np.fft.irfft(spectrum * ((freqs >= lo) & (freqs < hi)), n=data.shape[1])
        expected = limited.var(axis=1)
        var_from_de = np.exp(2 * de[:, :, b, :].astype(np.float64)) / (2 * np.pi * np.e)
        got = var_from_de.mean(axis=(0, 2))
        # Butterworth edges are -3 dB per pass, -6 dB forwards and backwards: a narrow band
        # passes up to ~12 % less power than a brick wall (a constant DE offset per band).
        assert np.allclose(got, expected, rtol=0.2), (b, got, expected)
        assert (got < expected * 1.05).all()
        assert np.allclose(
            0.5 * np.log(2 * np.pi * np.e * got),
            0.5 * np.log(2 * np.pi * np.e * expected),
            atol=0.1,
        )


def test_de_running_sums_equal_a_plain_loop() -> None:
    sf = 100.0
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2, 2000)) * np.linspace(1, 5, 2000)  # non-stationary
    starts = np.array([0, 37, 500, 1700])
    de = de_features(data, sf, starts, length=2.0)
    for b, (name, (lo, hi)) in enumerate(DE_BANDS.items()):
        x = _band_filtered(data, sf, lo, hi, name)
        x -= x.mean(axis=1, keepdims=True)
        for w, s0 in enumerate(starts):
            for k in range(2):
                seg = x[:, s0 + k * 100 : s0 + (k + 1) * 100]
                want = 0.5 * np.log(2 * np.pi * np.e * (seg**2).mean(axis=1))
                assert np.allclose(de[w, :, b, k], want, atol=1e-4)


def test_feature_names_follow_the_reshape_order() -> None:
    rng = np.random.default_rng(4)
    de = de_features(rng.normal(size=(3, 1280)), 128.0, [0, 256, 512])
    X = de.reshape(len(de), -1)
    names = de_feature_names(["Fz", "Cz", "Pz"], DE_BANDS, 3)
    assert names[:4] == ["Fz:delta:s0", "Fz:delta:s1", "Fz:delta:s2", "Fz:theta:s0"]
    assert len(names) == X.shape[1]
    channels, bands, seconds = parse_de_layout(names)
    assert seconds == 3
    for j, name in enumerate(names):
        ch, band, sec = name.split(":")
        assert np.array_equal(X[:, j], de[:, channels.index(ch), bands.index(band), int(sec[1:])])
    # A subset of channels in the same layout parses too.
    assert parse_de_layout(de_feature_names(["Cz"], bands, 3)) == (["Cz"], bands, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length": 2.5}, "whole seconds"),
        ({"starts": [0, 1200]}, "inside the recording"),
        ({"bands": {"gamma": (30.0, 70.0)}}, "Nyquist"),
    ],
)
def test_de_features_bad_input(kwargs: dict, match: str) -> None:
    args = {"starts": [0, 100], **kwargs}
    starts = args.pop("starts")
    with pytest.raises(RecallLabError, match=match):
        de_features(np.zeros((2, 1280)), 128.0, starts, **args)


# torch parts ---------------------------------------------------------------------------------
def test_gradient_reversal_negates_and_scales_the_domain_gradient() -> None:
    from decoding.music_supervised import CrossModalNet, grad_reverse

    torch.manual_seed(0)
    net = CrossModalNet(4, 6, 5, lstm1=8, lstm2=8, representation=8, shared=8)
    z = torch.randn(10, 8)
    domain = (torch.arange(10) % 2).float()
    grads = {}
    for lam in (None, 0.3, 1.0):
        zz = z.clone().requires_grad_(True)
        logit = net.discriminator(zz) if lam is None else net.domain_logit(zz, lam)
        torch.nn.functional.binary_cross_entropy_with_logits(logit, domain).backward()
        grads[lam] = zz.grad
    assert grads[None].abs().sum() > 0
    assert torch.allclose(grads[1.0], -grads[None])
    assert torch.allclose(grads[0.3], -0.3 * grads[None])
    # Forward is the identity.
    x = torch.randn(3, 2)
    assert torch.equal(grad_reverse(x, 0.5), x)


def test_attention_is_a_distribution_over_channels_that_reacts_to_one_channel() -> None:
    from decoding.music_supervised import EEGEncoder

    torch.manual_seed(0)
    enc = EEGEncoder(8, 12, lstm1=8, lstm2=8, representation=4).eval()
    x = torch.randn(6, 8, 12)
    with torch.no_grad():
        z, w = enc(x, return_attention=True)
        assert w.shape == (6, 8)
        assert torch.allclose(w.sum(dim=1), torch.ones(6))
        assert w.std(dim=0).max() > 1e-4  # weights vary across inputs
        h, _ = enc.lstm2(enc.lstm1(enc.norm(x))[0])
        x2 = x.clone()
        x2[0, 7] += 3.0  # the last channel only: before it, no LSTM state changes
        z2, w2 = enc(x2, return_attention=True)
        pooled, _ = enc.attention(h)
        h2, _ = enc.lstm2(enc.lstm1(enc.norm(x2))[0])
        pooled2, _ = enc.attention(h2)
    assert not torch.allclose(pooled[0], pooled2[0])
    assert not torch.allclose(w[0], w2[0])
    assert not torch.allclose(z[0], z2[0])
    assert torch.allclose(z[1:], z2[1:])


def test_trained_attention_is_not_uniform(trained) -> None:
    dec, (X, _, _, n_train) = trained
    w = dec.attention(X[n_train:])
    assert np.allclose(w.sum(axis=1), 1, atol=1e-5)
    assert (w.max(axis=1) - w.min(axis=1)).min() > 1e-3
    assert w.std(axis=0).max() > 1e-4


# the decoder ---------------------------------------------------------------------------------
def test_decodes_held_out_windows_where_valence_shifts_a_few_channels(trained) -> None:
    dec, (X, y, _, n_train) = trained
    assert dec.notes == []
    assert balanced_accuracy(y[n_train:], dec.predict(X[n_train:])) > 0.75
    proba = dec.predict_proba(X[n_train:])
    assert proba.shape == (len(y) - n_train, 3)
    assert np.allclose(proba.sum(axis=1), 1) and (proba[:, 1] == 0).all()


def test_stays_near_chance_when_labels_are_independent_of_eeg() -> None:
    scores = []
    for seed in range(3):
        X, y, M = synthetic(10 + seed, signal=False)
        n_train = int(0.7 * len(y))
        dec = decoder(seed, max_epochs=20, patience=5)
        dec.fit_representation(X[:n_train], y[:n_train], {"music": M[:n_train]})
        scores.append(balanced_accuracy(y[n_train:], dec.predict(X[n_train:])))
    assert np.mean(scores) < 0.65, scores


def test_shared_space_puts_eeg_near_the_music_of_its_valence(trained) -> None:
    dec, (X, y, M, n_train) = trained
    Z = dec.transform(X[n_train:])
    E = dec.embed_music(M[:n_train])
    assert Z.shape == (len(y) - n_train, 8) and E.shape == (n_train, 8)
    centre = {c: E[y[:n_train] == c].mean(axis=0) for c in (-1, 1)}

    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b / (np.linalg.norm(a, axis=1) * np.linalg.norm(b) + 1e-12)

    y_te = y[n_train:]
    own = np.where(y_te == 1, cos(Z, centre[1]), cos(Z, centre[-1]))
    other = np.where(y_te == 1, cos(Z, centre[-1]), cos(Z, centre[1]))
    assert own.mean() > other.mean() + 0.2
    assert (own > other).mean() > 0.75


def test_no_music_rows_and_eeg_only_training() -> None:
    X, y, M = synthetic(1)
    M[::3] = np.nan  # windows without music
    dec = decoder(max_epochs=5).fit_representation(X, y, {"music": M})
    assert dec.notes == [] and np.isnan(dec.embed_music(M[:3])[0]).all()
    eeg_only = decoder(max_epochs=20).fit_representation(X[:280], y[:280])
    assert any("EEG only" in note for note in eeg_only.notes)
    assert balanced_accuracy(y[280:], eeg_only.predict(X[280:])) > 0.75
    with pytest.raises(RecallLabError, match="without music"):
        eeg_only.embed_music(M)
    all_nan = decoder(max_epochs=2).fit_representation(X, y, {"music": np.full_like(M, np.nan)})
    assert any("EEG only" in note for note in all_nan.notes)


def test_early_stopping_uses_the_end_of_the_training_rows_and_is_deterministic() -> None:
    X, y, M = synthetic(2, n=200)
    n_train = 150
    a = decoder(3, max_epochs=8).fit_representation(
        X[:n_train], y[:n_train], {"music": M[:n_train]}
    )
    assert a.n_validation_rows == round(0.2 * n_train)
    assert np.array_equal(a.validation_rows, np.arange(n_train - 30, n_train))
    assert len(a.val_history) == len(a.loss_history) and 1 <= a.best_epoch <= 8
    b = decoder(3, max_epochs=8).fit_representation(
        X[:n_train], y[:n_train], {"music": M[:n_train]}
    )
    assert np.array_equal(a.transform(X[n_train:]), b.transform(X[n_train:]))
    assert a.loss_history == b.loss_history
    c = decoder(4, max_epochs=8).fit_representation(
        X[:n_train], y[:n_train], {"music": M[:n_train]}
    )
    assert not np.array_equal(a.transform(X[n_train:]), c.transform(X[n_train:]))


def test_validation_block_per_session_with_a_gap() -> None:
    groups = np.repeat([5, 2], [100, 50])
    fit, val = split_validation(150, groups, 0.2, gap=3)
    assert np.array_equal(val, np.r_[80:100, 140:150])
    assert np.array_equal(fit, np.r_[0:77, 100:137])
    fit, val = split_validation(10, None, 0.0)
    assert val.size == 0 and fit.size == 10


def test_leaky_protocol_refits_of_the_readout_keep_the_head(trained) -> None:
    dec, (X, y, _, _) = trained
    Z = dec.transform(X)
    before = dec.predict_proba_from(Z)
    part = copy.copy(dec).fit_readout(Z[:20], y[:20])
    assert np.array_equal(part.predict_proba_from(Z), before)


def test_save_and_load_give_identical_outputs(trained, tmp_path: Path) -> None:
    dec, (X, _, M, _) = trained
    (file,) = dec.save(tmp_path / "model")
    assert file.name == "model.music_supervised.pt"
    again = MusicSupervised.load(file)
    assert again.feature_names == NAMES and again.settings == dec.settings
    assert np.array_equal(again.transform(X), dec.transform(X))
    assert np.array_equal(again.predict_proba(X), dec.predict_proba(X))
    assert np.array_equal(again.embed_music(M), dec.embed_music(M))
    (tmp_path / "other.pt").write_bytes(b"not a model")
    with pytest.raises(RecallLabError, match="music_supervised model"):
        MusicSupervised.load(tmp_path / "other.pt")


def test_bad_inputs_give_one_clear_error() -> None:
    X, y, M = synthetic(5, n=60)
    with pytest.raises(RecallLabError, match=r"negative \(-1\) and positive \(1\)"):
        decoder().fit_representation(X, np.where(y > 0, 1, 0))
    dec = MusicSupervised(SMALL)
    with pytest.raises(RecallLabError, match="feature_names"):
        dec.fit_representation(X, y)
    with pytest.raises(RecallLabError, match="<channel>:<band>:s<second>"):
        dec.fit_representation(X, y, feature_names=[f"c{i}:alpha" for i in range(X.shape[1])])
    with pytest.raises(RecallLabError, match="not a full"):
        dec.fit_representation(X, y, feature_names=NAMES[::-1])
    with pytest.raises(RecallLabError, match="one row per EEG window"):
        decoder().fit_representation(X, y, {"music": M[:-1]})
    with pytest.raises(RecallLabError, match="expected 96 DE features"):
        decoder().fit_representation(X[:, :-1], y)
    partly = M.copy()
    partly[0, 0] = np.nan
    with pytest.raises(RecallLabError, match="all NaN"):
        decoder().fit_representation(X, y, {"music": partly})
    with pytest.raises(RecallLabError, match="fit the decoder"):
        decoder().transform(X)
    with pytest.raises(ConfigError, match="unknown field"):
        MusicSupervised({"hidden": 3})
    with pytest.raises(ConfigError, match=r"music_supervised\.val_fraction"):
        MusicSupervised({"val_fraction": 1.5})
    assert isinstance(ConfigError("x"), RecallLabError)


def test_config_defaults_follow_the_paper() -> None:
    cfg = MusicSupervisedConfig()
    cfg.check()
    assert (cfg.lstm1, cfg.lstm2, cfg.representation, cfg.shared) == (128, 256, 128, 32)
    assert (cfg.weight_task, cfg.weight_eeg, cfg.weight_music, cfg.weight_domain) == (
        0.9,
        0.6,
        0.4,
        0.1,
    )
    assert cfg.lr == 1e-4 and MusicSupervised(vars(cfg)).settings == vars(cfg)


def test_module_imports_without_torch() -> None:
    code = (
        "import sys\nimport decoding.music_supervised\n"
        "print(','.join(m for m in ('torch', 'mne', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_trains_and_predicts_on_cuda(tmp_path: Path) -> None:
    X, y, M = synthetic(6)
    dec = decoder(device="cuda_if_available")
    dec.fit_representation(X[:280], y[:280], {"music": M[:280]})
    assert dec.device == "cuda"
    assert balanced_accuracy(y[280:], dec.predict(X[280:])) > 0.75
    again = MusicSupervised.load(dec.save(tmp_path / "m")[0])
    assert np.allclose(again.transform(X), dec.transform(X), atol=1e-5)
