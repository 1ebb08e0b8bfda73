"""Segments, prompts, crossfades, loudness and chroma: the pure parts of generation."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from data_schema.errors import ConfigError, RecallLabError
from generation.music import equal_power_join, normalize_loudness
from generation.prompts import Lexicon, build_prompts, condense, word_count_tokens
from generation.segments import (
    Segment,
    SegmentRules,
    control_order,
    reorder,
    rescale,
    segment_trajectory,
)


def _traj(pattern: list[tuple[float, float]], rate: float = 10.0):
    """Piecewise-constant valence: [(seconds, value), ...] on a grid."""
    v = np.concatenate([np.full(round(d * rate), x) for d, x in pattern])
    return 100.0 + np.arange(len(v)) / rate, v


def test_segments_follow_affect_with_durations_and_strength():
    t, v = _traj([(5, 1.0), (6, 0.0), (4, -0.5)])
    segs = segment_trajectory(t, v, SegmentRules(min_duration=2, smoothing=0))
    assert [s.affect for s in segs] == ["positive", "neutral", "negative"]
    assert [round(s.duration, 6) for s in segs] == [5, 6, 4]
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(15)
    assert segs[0].strength == pytest.approx(1.0)
    assert segs[2].strength == pytest.approx(0.5)
    assert segs[1].strength == 0


def test_short_runs_merge_into_neighbours_and_smoothing_removes_flicker():
    t, v = _traj([(6, 1.0), (0.5, -1.0), (6, 1.0), (1.0, 0.0), (6, -1.0)])
    segs = segment_trajectory(t, v, SegmentRules(min_duration=2, smoothing=0))
    assert [s.affect for s in segs] == ["positive", "negative"]
    assert all(s.duration >= 2 for s in segs)
    assert sum(s.duration for s in segs) == pytest.approx(19.5)
    # Contiguous: each segment starts where the previous ended.
    assert all(a.end == b.start for a, b in itertools.pairwise(segs))


def test_bad_trajectory_and_rules_are_user_errors():
    with pytest.raises(RecallLabError):
        segment_trajectory(np.array([1.0]), np.array([0.0]))
    with pytest.raises(RecallLabError):
        segment_trajectory(np.array([2.0, 1.0, 0.0]), np.zeros(3))
    with pytest.raises(RecallLabError):
        SegmentRules(threshold=0)


def test_rescale_keeps_proportions():
    t, v = _traj([(5, 1.0), (15, -1.0)])
    segs = rescale(segment_trajectory(t, v, SegmentRules(smoothing=0)), 8.0)
    assert [s.duration for s in segs] == pytest.approx([2.0, 6.0])


@pytest.mark.parametrize("seed", range(5))
def test_control_is_a_real_permutation_with_another_affect_order(seed):
    t, v = _traj([(5, 1.0), (5, 0.0), (5, -1.0), (5, 1.0), (5, 0.0)])
    segs = segment_trajectory(t, v, SegmentRules(min_duration=2, smoothing=0))
    order = control_order(segs, seed)
    assert sorted(order) == list(range(len(segs)))
    assert [segs[i].affect for i in order] != [s.affect for s in segs]
    assert control_order(segs, seed) == order  # seeded: reproducible
    ctrl = reorder(segs, order)
    assert ctrl[-1].end == pytest.approx(segs[-1].end)
    assert sorted((s.index, s.duration) for s in ctrl) == sorted(
        (s.index, s.duration) for s in segs
    )


def test_control_of_single_affect_is_identity():
    segs = [Segment(0, 0, 5, "neutral", 0, 0)]
    assert control_order(segs, 3) == [0]


def test_prompts_more_descriptors_for_stronger_affect_and_neutral_keeps_text():
    lex = Lexicon()
    segs = [
        Segment(0, 0, 4, "positive", 0.2, 0.2),
        Segment(1, 4, 8, "positive", 1.0, 1.0),
        Segment(2, 8, 12, "neutral", 0.0, 0.0),
        Segment(3, 12, 16, "negative", 0.9, -0.9),
    ]
    pr = build_prompts("a walk by the lake at dusk", segs, lex)
    assert len(pr[0].descriptors_image) < len(pr[1].descriptors_image)
    assert pr[2].image == "a walk by the lake at dusk" and not pr[2].descriptors_image
    assert all(d in pr[3].image for d in pr[3].descriptors_image)
    assert set(pr[3].descriptors_image) <= set(lex.words["negative"]["image"])
    assert "instrumental" in pr[1].music


def test_long_description_is_condensed_but_affect_words_survive(tmp_path):
    from test_generation_helpers import LONG_DESCRIPTION
    from transformers import CLIPTokenizer

    from generation.tiny import clip_tokenizer

    clip_tokenizer(tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path, local_files_only=True)

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    assert count(LONG_DESCRIPTION) > 77
    segs = [Segment(0, 0, 4, "negative", 1.0, -1.0), Segment(1, 4, 8, "positive", 0.5, 0.5)]
    for p in build_prompts(LONG_DESCRIPTION, segs, Lexicon(), count_tokens=count):
        ids = tok(p.image)["input_ids"]
        assert len(ids) <= 77  # BOS + text + EOS fits CLIP's context
        assert p.description_condensed
        assert p.image.endswith(", ".join(p.descriptors_image))
        assert p.image.split(",")[0].split()[0] == "summer"  # content words, in order


def test_condense_drops_filler_first():
    text = "I was at the old house with my sister and we laughed"
    out = condense(text, 8, word_count_tokens)
    assert "old house" in out and " the " not in f" {out} "
    assert word_count_tokens(out) <= 8


def test_lexicon_file_is_validated(tmp_path):
    good = {
        "positive": {"image": ["sunny"], "music": ["lively"]},
        "negative": {"image": ["stormy"], "music": ["grave"]},
    }
    p = tmp_path / "lex.json"
    p.write_text(json.dumps(good))
    assert Lexicon.load(p).descriptors("positive", 1.0, "image") == ["sunny"]
    p.write_text(json.dumps({"positive": {"image": []}}))
    with pytest.raises(ConfigError, match=r"positive\.image"):
        Lexicon.load(p)
    p.write_text("{not json")
    with pytest.raises(ConfigError):
        Lexicon.load(p)


def test_equal_power_crossfade_keeps_power_and_has_no_clicks():
    rate = 8000
    rng = np.random.default_rng(0)
    durations = [1.0, 0.5, 1.25]
    xf = 0.25
    # Uncorrelated noise of equal power: an equal-power fade keeps the power constant.
    clips = [rng.normal(0, 0.1, round((d + xf) * rate)).astype(np.float32) for d in durations]
    out = equal_power_join(clips, durations, rate, xf)
    assert len(out) == round(sum(durations) * rate)
    win = rate // 20
    rms = np.sqrt(np.convolve(out**2, np.ones(win) / win, mode="valid"))
    assert rms.min() > 0.07 and rms.max() < 0.13
    # Sine clips of different phase: the junction's sample-to-sample step stays within what
    # the sines themselves do (a hard cut would jump by up to 2x the amplitude).
    t = np.arange(round(2 * rate)) / rate
    sines = [np.sin(2 * np.pi * 220 * t + ph).astype(np.float32) for ph in (0.0, 2.0)]
    joined = equal_power_join(sines, [1.0, 1.0], rate, 0.05)
    max_step = 2 * np.pi * 220 / rate * 1.05
    assert np.max(np.abs(np.diff(joined))) < max_step
    hard = np.concatenate([sines[0][:rate], sines[1][:rate]])
    assert np.max(np.abs(np.diff(hard))) > max_step


def test_loudness_normalisation_hits_target_and_respects_peak():
    x = (0.01 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    y = normalize_loudness(x, -20.0)
    assert 20 * np.log10(np.sqrt(np.mean(y**2))) == pytest.approx(-20.0, abs=0.01)
    spiky = np.zeros(16000, np.float32)
    spiky[100] = 1.0
    assert np.max(np.abs(normalize_loudness(spiky, -3.0))) <= 0.98
    assert not np.any(normalize_loudness(np.zeros(10, np.float32)))


def test_chroma_finds_the_pitch_class_and_matches_extractor_frame_count():
    from generation.chroma import ChromaSettings, melody_chroma, to_mono_rate

    s = ChromaSettings()
    sr = 16000
    t = np.arange(3 * sr) / sr
    a440 = to_mono_rate(np.sin(2 * np.pi * 440 * t), sr, s.sampling_rate)
    c = melody_chroma(a440, s)
    # One frame per hop with centred frames, as the transformers extractor produces.
    assert c.shape == (1 + len(a440) // s.hop_length, 12)
    assert np.all(c.sum(axis=1) == 1)
    # transformers' chroma filter bank starts at A (base_c=True puts C first); check with
    # the filter bank itself which bin A440 falls in.
    from transformers.audio_utils import chroma_filter_bank

    fb = chroma_filter_bank(
        sampling_rate=s.sampling_rate, num_frequency_bins=s.n_fft, tuning=0, num_chroma=12
    )
    a_bin = int(np.argmax(fb[:, round(440 * s.n_fft / s.sampling_rate)]))
    mid = c[2 : len(c) - 2]
    assert np.all(mid.argmax(axis=1) == a_bin)
    c_note = to_mono_rate(np.sin(2 * np.pi * 261.63 * t), sr, s.sampling_rate)
    assert melody_chroma(c_note, s)[3].argmax() == (a_bin + 3) % 12


def test_models_folder_precedence_and_missing_model_message(tmp_path, monkeypatch):
    from generation.models import ENV_VAR, ModelMissingError, models_dir, require_model

    cfg_home = tmp_path / "cfg"
    (cfg_home / "recall-lab").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg_home))
    monkeypatch.delenv(ENV_VAR, raising=False)
    (cfg_home / "recall-lab" / "config.json").write_text(json.dumps({"models_dir": "/from/cfg"}))
    assert str(models_dir()) == "/from/cfg"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert models_dir() == tmp_path / "env"
    assert models_dir(tmp_path / "arg") == tmp_path / "arg"
    with pytest.raises(ModelMissingError, match="facebook/musicgen-melody") as err:
        require_model("musicgen-melody")
    assert "hf download facebook/musicgen-melody" in str(err.value)
    assert "\n" not in str(err.value)
    monkeypatch.delenv(ENV_VAR)
    (cfg_home / "recall-lab" / "config.json").write_text("{broken")
    with pytest.raises(ConfigError, match=r"config\.json"):
        models_dir()


def test_device_is_cpu_float32_without_cuda():
    import torch

    from generation.models import pick_device

    if torch.cuda.is_available():
        assert pick_device().dtype_name == "float16"
    else:
        assert pick_device() == pick_device("cpu")
        assert pick_device().dtype_name == "float32"
        with pytest.raises(ConfigError, match="no CUDA"):
            pick_device("cuda")
