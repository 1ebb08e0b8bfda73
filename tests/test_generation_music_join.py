"""Segment music joined by continuation (default) or by crossfades, with the tiny MusicGen-melody.

The tiny model is written by ``recall-lab models make-tiny`` and loaded back through
``MusicGenerator`` (``from_pretrained(local_files_only=True)``), as a real model would be.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_generation_helpers import hum, write_session

from app.cli import main
from generation.music import (
    MusicPart,
    MusicSettings,
    boundary_transitions,
    equal_power_join,
    normalize_loudness,
)

pytestmark = [pytest.mark.timeout(600)]

DURATIONS = [0.6, 0.5, 0.7]
PROMPTS = ["bright happy major", "calm ambient", "dark sad minor"]
SETTINGS = MusicSettings(window=30.0, overlap=0.3, crossfade=0.2)
#: At a boundary the continuation may differ from the inside of a segment by at most this factor
#: (sample-to-sample jump, and spectral flux across the boundary, over their medians inside).
JUMP_FACTOR = 1.4
FLUX_FACTOR = 2.0


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    from generation.models import pick_device
    from generation.music import MusicGenerator

    d = tmp_path_factory.mktemp("models")
    assert main(["models", "make-tiny", str(d), "--only", "musicgen-melody"]) == 0
    return MusicGenerator(d / "musicgen-melody", pick_device("cpu"))


@pytest.fixture(scope="module")
def joined(music):
    """The same three segments as a continuation chain, crossfaded clips and a hard cut."""
    rate = music.sampling_rate
    starts = np.concatenate([[0.0], np.cumsum(DURATIONS)[:-1]])
    parts = [
        MusicPart(p, d, hum(), 16000, float(s), seed)
        for seed, (p, d, s) in enumerate(zip(PROMPTS, DURATIONS, starts))
    ]
    chain = music.generate_chain(parts, SETTINGS)
    clips = [music.generate_part(p, SETTINGS, extra=SETTINGS.crossfade)[0] for p in parts]
    crossfade = equal_power_join(clips, DURATIONS, rate, SETTINGS.crossfade)
    cut = np.concatenate([c[: round(d * rate)] for c, d in zip(clips, DURATIONS)])
    return chain, crossfade, cut, [float(b) for b in np.cumsum(DURATIONS)[:-1]]


def test_continuation_has_the_crossfade_join_length_and_rate(music, joined):
    chain, crossfade, cut, _ = joined
    assert music.sampling_rate == 32000
    assert len(chain.track) == len(crossfade) == len(cut) == round(sum(DURATIONS) * 32000)
    assert [len(c) for c in chain.clips] == [round(d * 32000) for d in DURATIONS]
    assert np.array_equal(np.concatenate(chain.clips), chain.track)
    # Segment k > 0 is prompted with the audio before it; the first starts from nothing.
    assert [p[0]["continued"] for p in chain.plans] == [False, True, True]
    assert np.all(np.isfinite(chain.track))


def test_no_discontinuity_at_boundaries(music, joined):
    chain, _, cut, bounds = joined
    rate = music.sampling_rate
    cont = boundary_transitions(normalize_loudness(chain.track), rate, bounds, guard=0.1)
    hard = boundary_transitions(normalize_loudness(cut), rate, bounds, guard=0.1)
    assert max(cont["jump_ratio"]) <= JUMP_FACTOR, cont
    assert max(cont["flux_ratio"]) <= FLUX_FACTOR, cont
    # A hard cut between separately generated clips jumps; the continuation clearly less.
    for c, h in zip(cont["jump_ratio"], hard["jump_ratio"]):
        assert c < 0.8 * h, (cont, hard)


def test_bad_join_is_a_one_line_error():
    from data_schema.errors import RecallLabError

    with pytest.raises(RecallLabError, match="--music-join"):
        MusicSettings(join="splice")
    with pytest.raises(RecallLabError, match="--overlap"):
        MusicSettings(join="continue", overlap=0.0)
    assert MusicSettings().join == "continue"
    assert MusicSettings(join="crossfade", crossfade=0.5).tail() == 0.5


def test_control_gets_its_own_continuation_chain(tmp_path):
    from scipy.io import wavfile

    models = tmp_path / "models"
    assert (
        main(["models", "make-tiny", str(models), "--only", "stable-diffusion", "musicgen-melody"])
        == 0
    )
    session = write_session(tmp_path / "s.h5", recall=15.0)
    out = tmp_path / "gen"
    args = ["generate", str(session), "--models", str(models), "--out", str(out), "--quiet"]
    args += ["--steps", "1", "--fps", "8", "--transition", "0.5", "--overlap", "0.5"]
    args += ["--duration", "3", "--min-segment", "1", "--control", "--no-evaluate"]
    assert main(args) == 0
    folder = out / "run-001" / "m1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["music_join"] == "continue"
    assert manifest["config"]["music"]["join"] == "continue"
    order = manifest["control"]["order"]
    assert order != sorted(order)
    # Its own chain: each segment after the first continues the one before it in the control.
    windows = manifest["control"]["music_windows"]
    assert [w[0]["continued"] for w in windows] == [False] + [True] * (len(order) - 1)
    rate, recon = wavfile.read(folder / "reconstruction.wav")
    _, control = wavfile.read(folder / "control_reordered.wav")
    assert len(control) == len(recon) == round(manifest["total_seconds"] * rate)
    # Not the reconstruction's segments shuffled: they were generated after other audio.
    segs = [wavfile.read(folder / s["music"])[1].astype(np.float32) for s in manifest["segments"]]
    shuffled = normalize_loudness(np.concatenate([segs[i] for i in order]))
    assert len(shuffled) == len(control)
    assert np.max(np.abs(shuffled - control.astype(np.float32))) > 1e-3
