"""Shared fixtures. Area-specific fixtures live in the area's own test modules."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The real-input rig (the app on Xvfb + openbox, driven through XTEST): `x_server`, `real_app`.
pytest_plugins = ("realinput.fixtures",)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``: real recordings by other labs (skip if this checkout has none)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture
def unique_id() -> str:
    """A unique LSL source_id / stream name suffix, so parallel tests never see each other."""
    return f"rl-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def fusion_models(tmp_path_factory) -> Path:
    """The fusion decoders' tiny random audio tagger (AST) and face ViT, made once by
    ``recall-lab models make-tiny`` and loaded back from that folder as a user's would be."""
    from app.cli import main

    folder = tmp_path_factory.mktemp("fusion") / "models"
    assert main(["models", "make-tiny", str(folder), "--only", "audio-tagger", "face-vit"]) == 0
    return folder


@pytest.fixture(scope="session")
def reconstructed_session(tmp_path_factory) -> Path:
    """A recall session and its reconstruction with the reordered control (``recall-lab
    generate --control``, tiny random models, 6 s): what a preference phase shows. Made once
    for every test that judges reconstructions (tests/test_preference.py, the app's rig)."""
    from test_generation_helpers import write_session

    from app.cli import main

    root = tmp_path_factory.mktemp("reconstructed")
    models = root / "models"
    assert main(["models", "make-tiny", str(models)]) == 0
    session = write_session(root / "P001_recall.h5", recall=15.0, participant="P001")
    args = ["generate", str(session), "--models", str(models), "--out", str(root / "gen")]
    args += ["--steps", "1", "--fps", "8", "--crossfade", "0.5", "--transition", "0.5"]
    args += ["--duration", "6", "--control", "--min-segment", "2", "--quiet"]
    assert main(args) == 0
    return session


@pytest.fixture(scope="session")
def judged_sessions(reconstructed_session, tmp_path_factory) -> list[Path]:
    """Two participants' judging sessions (P001, P002): ``recall-lab demo`` with a preference
    phase, the simulated participant rating and choosing between the reconstruction of
    :func:`reconstructed_session` and its control. Made once; a test that writes into them
    (an analysis stores its run there) works on copies."""
    from app.cli import main

    root = tmp_path_factory.mktemp("judged")
    proto = root / "verdict.yaml"
    proto.write_text(
        "version: 1\nname: verdict-demo\nmemories: [{id: m1, cue: A summer by the lake}]\n"
        "phases:\n  - {id: judge, kind: preference, memory: m1}\n"
    )
    judged = []
    for i, who in enumerate(("P001", "P002")):
        out = root / f"{who}_verdict.h5"
        args = ["demo", "--protocol", str(proto), "--out", str(out), "--participant", who]
        args += ["--reconstructions", str(reconstructed_session), "--no-offline", "--quiet"]
        # the ratings and the choice scaled; the videos keep their 6 s
        args += ["--seed", str(i), "--time-scale", "0.3"]
        assert main(args) == 0
        judged.append(out)
    return judged
