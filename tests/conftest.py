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
