"""The music tagger: per-segment embeddings of music clips from the audio-tagger model.

A tiny random Audio Spectrogram Transformer is written by ``make-tiny`` and loaded back through
``MusicTagger.load``, the user's code path; clips are real WAV files written with soundfile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_schema.errors import RecallLabError
from decoding.music_tagger import MusicTagger, cache_dir, file_sha256, model_fingerprint
from generation.models import ModelMissingError
from generation.tiny import make_tiny_models

REPO = Path(__file__).resolve().parents[1]
RATE = 44100


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models") / "models"
    make_tiny_models(d, ["audio-tagger"])
    return d


@pytest.fixture(scope="module")
def tagger(models_root) -> MusicTagger:
    return MusicTagger.load(models_root)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Each test caches embeddings in its own folder, never in the user's ~/.cache."""
    d = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    return d


def chord(freqs: tuple[float, ...], seconds: float, rate: int = RATE, stereo: bool = True):
    """A chord whose notes swell and fade once a second, as ``[samples x channels]``."""
    t = np.arange(round(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    wave = 0.6 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 1.0 * t))
    if not stereo:
        return wave.astype(np.float32)
    return np.stack([wave, 0.8 * wave], axis=1).astype(np.float32)


C_MAJOR = (261.63, 329.63, 392.0)
A_MINOR_LOW = (110.0, 130.81, 164.81)


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    sf.write(path, audio, rate)
    return path


def test_make_tiny_through_the_cli_and_listed_as_found(tmp_path):
    d = tmp_path / "models"
    cmd = [sys.executable, "-m", "app.cli", "models"]
    env = {k: v for k, v in os.environ.items() if k != "RECALL_LAB_MODELS"}
    made = subprocess.run(
        [*cmd, "make-tiny", str(d), "--only", "audio-tagger"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    assert (d / "ast-audioset" / "config.json").is_file()
    listed = subprocess.run(
        [*cmd, "--models", str(d)], capture_output=True, text=True, cwd=REPO, env=env
    )
    # Exit 1: the required generation models are missing; the tagger itself is found.
    assert listed.returncode == 1, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.strip().startswith("audio-tagger"))
    assert "optional" in line and "found (TINY" in line and "ast-audioset" in line


def test_loads_with_its_attributes(tagger, models_root):
    folder = models_root / "ast-audioset"
    config = json.loads((folder / "config.json").read_text())
    assert tagger.key == "audio-tagger"
    assert tagger.path == folder
    assert tagger.dim == config["hidden_size"] == 32
    assert tagger.sample_rate == 16000
    assert tagger.tiny is True
    assert tagger.fingerprint == model_fingerprint(folder)


def test_segments_of_a_stereo_wav(tagger, tmp_path):
    path = write_wav(tmp_path / "chord.wav", chord(C_MAJOR, 7.5))
    emb = tagger.embed_file(path)
    assert emb.shape == (int(np.floor((7.5 - 3.0) / 1.0)) + 1, tagger.dim) == (5, 32)
    assert emb.dtype == np.float32 and np.isfinite(emb).all()
    # Other segmentations follow the same rule.
    assert tagger.embed_file(path, length=2.0, step=0.5).shape == (12, tagger.dim)
    assert tagger.embed_file(path, length=3.0, step=4.5).shape == (2, tagger.dim)
    # Deterministic: the same clip twice gives the same embeddings.
    np.testing.assert_array_equal(tagger.embed_file(path), emb)
    # The batch size changes memory, not results.
    np.testing.assert_allclose(tagger.embed_file(path, batch=2), emb, atol=1e-5)


def test_different_clips_give_different_embeddings(tagger, tmp_path):
    a = tagger.embed_file(write_wav(tmp_path / "a.wav", chord(C_MAJOR, 7.5)))
    b = tagger.embed_file(write_wav(tmp_path / "b.wav", chord(A_MINOR_LOW, 7.5)))
    assert a.shape == b.shape
    assert np.abs(a - b).max() > 1e-3


def test_each_segment_is_the_embedding_of_that_stretch_alone(tagger):
    rate = tagger.sample_rate  # at the model's rate, so no resampling edge effects
    clip = chord(C_MAJOR, 4.0, rate, stereo=False) + chord(A_MINOR_LOW, 4.0, rate, stereo=False)
    clip[: 2 * rate] *= np.linspace(0.2, 1.0, 2 * rate, dtype=np.float32)
    emb = tagger.embed_segments(clip, rate, length=2.0, step=0.5)
    assert emb.shape == (5, tagger.dim)
    for k in range(5):
        start = round(k * 0.5 * rate)
        alone = tagger.embed_segments(clip[start : start + 2 * rate], rate, length=2.0)
        assert alone.shape == (1, tagger.dim)
        np.testing.assert_allclose(emb[k], alone[0], atol=1e-5)
    # Sensitive to where the segment starts: a quarter-second shift is another embedding.
    shifted = tagger.embed_segments(clip[rate // 4 : rate // 4 + 2 * rate], rate, length=2.0)
    assert np.abs(shifted[0] - emb[0]).max() > 1e-3


def test_channels_are_averaged_and_input_is_resampled(tagger):
    stereo = chord(C_MAJOR, 4.0, rate=22050)
    mono = stereo.mean(axis=1)
    np.testing.assert_allclose(
        tagger.embed_segments(stereo, 22050), tagger.embed_segments(mono, 22050), atol=1e-5
    )
    # 22.05 kHz and 16 kHz versions of the same chord land close together, much closer than
    # another chord or than the same samples taken as 16 kHz (a pitch shift).
    native = tagger.embed_segments(chord(C_MAJOR, 4.0, rate=16000).mean(axis=1), 16000)
    other = tagger.embed_segments(chord(A_MINOR_LOW, 4.0, rate=16000).mean(axis=1), 16000)
    resampled = tagger.embed_segments(mono, 22050)
    misread = tagger.embed_segments(mono, 16000)[: len(native)]
    assert resampled.shape == native.shape == (2, tagger.dim)
    gap = np.abs(resampled - native).mean()
    assert gap < np.abs(other - native).mean() / 3
    assert gap < np.abs(misread - native).mean() / 3


def test_a_short_clip_gives_one_zero_padded_segment(tagger, tmp_path):
    emb = tagger.embed_file(write_wav(tmp_path / "short.wav", chord(C_MAJOR, 1.0)))
    assert emb.shape == (1, tagger.dim) and np.isfinite(emb).all()
    rate = tagger.sample_rate  # padding checked at the model's rate (no resampling edges)
    short = chord(C_MAJOR, 1.0, rate, stereo=False)
    padded = np.concatenate([short, np.zeros(2 * rate, np.float32)])
    np.testing.assert_allclose(
        tagger.embed_segments(short, rate), tagger.embed_segments(padded, rate), atol=1e-5
    )


def test_cache_stores_and_reads_back(tagger, tmp_path, private_cache):
    audio_dir = tmp_path / "clips"
    audio_dir.mkdir()
    path = write_wav(audio_dir / "chord.wav", chord(C_MAJOR, 7.5))
    first = tagger.embed_file(path, cache=True)
    cached = tagger.cache_file(file_sha256(path), 3.0, 1.0)
    assert cached.parent == cache_dir() == private_cache / "recall-lab" / "music-embeddings"
    assert cached.name == f"{file_sha256(path)}-{tagger.fingerprint}-3.0-1.0.npy"
    assert cached.is_file() and sorted(os.listdir(cache_dir())) == [cached.name]
    assert os.listdir(audio_dir) == ["chord.wav"]  # nothing next to the input
    np.testing.assert_array_equal(np.load(cached), first)
    np.testing.assert_array_equal(tagger.embed_file(path, cache=True), first)

    # A hit is read from the cache file, not recomputed: a planted array comes back as is.
    planted = np.full_like(first, 7.0)
    np.save(cached, planted)
    np.testing.assert_array_equal(tagger.embed_file(path, cache=True), planted)
    # Without cache=True the cache is neither read nor written.
    np.testing.assert_array_equal(tagger.embed_file(path), first)
    np.testing.assert_array_equal(np.load(cached), planted)
    # Another segmentation is another cache file.
    assert tagger.embed_file(path, cache=True, step=0.5).shape == (10, tagger.dim)
    assert len(os.listdir(cache_dir())) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda p, emb: p.write_bytes(b"not a numpy file"),
        lambda p, emb: p.write_bytes(p.read_bytes()[:-40]),  # truncated
        lambda p, emb: np.save(p, emb[:, :5]),  # another model's width
        lambda p, emb: np.save(p, emb.astype(np.float64)),
    ],
    ids=["garbage", "truncated", "wrong-width", "wrong-dtype"],
)
def test_a_corrupt_cache_file_is_ignored_and_rewritten(tagger, tmp_path, damage):
    path = write_wav(tmp_path / "chord.wav", chord(C_MAJOR, 4.0))
    first = tagger.embed_file(path, cache=True)
    cached = tagger.cache_file(file_sha256(path), 3.0, 1.0)
    damage(cached, first)
    np.testing.assert_array_equal(tagger.embed_file(path, cache=True), first)
    np.testing.assert_array_equal(np.load(cached), first)


def test_cache_needs_no_model_folder_and_follows_the_model(models_root, tmp_path):
    folder = tmp_path / "models" / "ast-audioset"
    shutil.copytree(models_root / "ast-audioset", folder)
    tagger = MusicTagger.load(tmp_path / "models")
    path = write_wav(tmp_path / "chord.wav", chord(A_MINOR_LOW, 5.0))
    first = tagger.embed_file(path, cache=True)
    fingerprint = tagger.fingerprint
    shutil.rmtree(folder)
    np.testing.assert_array_equal(tagger.embed_file(path, cache=True), first)
    # New weights (here: the same file touched) give a new fingerprint, so a fresh cache.
    shutil.copytree(models_root / "ast-audioset", folder)
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert model_fingerprint(folder) != fingerprint


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelMissingError) as err:
        MusicTagger.load(tmp_path / "empty")
    msg = str(err.value)
    assert "\n" not in msg
    assert "hf download MIT/ast-finetuned-audioset-10-10-0.4593 --local-dir" in msg
    assert str(tmp_path / "empty" / "ast-audioset") in msg


@pytest.mark.parametrize("cache", [False, True])
def test_unreadable_audio_is_one_line(tagger, tmp_path, cache):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"these are not the samples you are looking for" * 20)
    with pytest.raises(RecallLabError) as err:
        tagger.embed_file(bad, cache=cache)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    assert not cache_dir().exists() or not os.listdir(cache_dir())
    with pytest.raises(RecallLabError, match="no such audio file"):
        tagger.embed_file(tmp_path / "absent.wav", cache=cache)
    empty = write_wav(tmp_path / "empty.wav", np.zeros((0, 2), np.float32))
    with pytest.raises(RecallLabError, match="no audio samples"):
        tagger.embed_file(empty, cache=cache)


def test_bad_segmentation_is_one_line(tagger):
    clip = chord(C_MAJOR, 2.0)
    for kw, words in [
        ({"length": 4.0}, "longer than"),
        ({"length": 0.0}, "segment length"),
        ({"step": 0.0}, "segment step"),
        ({"batch": 0}, "batch"),
    ]:
        with pytest.raises(RecallLabError, match=words) as err:
            tagger.embed_segments(clip, RATE, **kw)
        assert "\n" not in str(err.value)
    with pytest.raises(RecallLabError, match="sample rate"):
        tagger.embed_segments(clip, 0)
    with pytest.raises(RecallLabError, match="NaN"):
        tagger.embed_segments(np.full((RATE, 2), np.nan, np.float32), RATE)


def test_importing_the_module_loads_no_heavy_stack():
    code = (
        "import sys, decoding.music_tagger\n"
        "heavy = ['torch', 'transformers', 'scipy', 'soundfile']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""
