"""The audiocraft music backend (its own environment, ``make test-audiocraft``).

Skipped unless ``.venv-audiocraft`` exists (``make audiocraft-env``). A tiny random checkpoint in
audiocraft's layout is written by the worker in that environment and loaded back through
``AudiocraftMusicGenerator``, the path ``--music-backend audiocraft`` takes.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_generation_helpers import hum

from app.cli import main
from generation.music import MusicPart, MusicSettings
from generation.music_audiocraft import ENV_PYTHON

pytestmark = [
    pytest.mark.audiocraft,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not ENV_PYTHON.exists(), reason="no .venv-audiocraft: run `make audiocraft-env`"
    ),
]

SETTINGS = MusicSettings(window=30.0, overlap=0.3, crossfade=0.2)


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    from generation.models import pick_device
    from generation.music import MusicGenerator
    from generation.music_audiocraft import AudiocraftMusicGenerator, make_tiny_audiocraft

    d = tmp_path_factory.mktemp("models")
    assert main(["models", "make-tiny", str(d), "--only", "musicgen-melody"]) == 0
    ac = AudiocraftMusicGenerator(make_tiny_audiocraft(d / "audiocraft"), pick_device("cpu"))
    yield MusicGenerator(d / "musicgen-melody", pick_device("cpu")), ac
    ac.close()


def test_same_request_same_length_and_rate(generators):
    hf, ac = generators
    assert ac.sampling_rate == hf.sampling_rate == 32000
    assert ac.frame_rate == hf.frame_rate == 50
    kw = {"melody": hum(), "melody_rate": 16000, "seed": 3, "settings": SETTINGS}
    a, plan_a = ac.generate("a calm tune", 0.7, **kw)
    b, plan_b = hf.generate("a calm tune", 0.7, **kw)
    assert len(a) == len(b) == round(0.7 * 32000)
    assert a.dtype == b.dtype == np.float32 and np.all(np.isfinite(a))
    assert [w["continued"] for w in plan_a] == [w["continued"] for w in plan_b]


def test_continuation_chain_same_length_as_transformers(generators):
    hf, ac = generators
    parts = [
        MusicPart(p, d, hum(), 16000, s, i)
        for i, (p, d, s) in enumerate([("happy", 0.5, 0.0), ("sad", 0.4, 0.5)])
    ]
    a, b = ac.generate_chain(parts, SETTINGS), hf.generate_chain(parts, SETTINGS)
    assert len(a.track) == len(b.track) == round(0.9 * 32000)
    assert [len(c) for c in a.clips] == [len(c) for c in b.clips]
    assert [p[0]["continued"] for p in a.plans] == [False, True]


def test_missing_environment_or_checkpoint_is_one_line(tmp_path):
    from data_schema.errors import RecallLabError
    from generation.models import pick_device
    from generation.music_audiocraft import AudiocraftMusicGenerator

    with pytest.raises(RecallLabError, match="make audiocraft-env"):
        AudiocraftMusicGenerator(tmp_path, pick_device("cpu"), python=tmp_path / "nope")
    with pytest.raises(RecallLabError, match=r"state_dict\.bin"):
        AudiocraftMusicGenerator(tmp_path, pick_device("cpu"))
