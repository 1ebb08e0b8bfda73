"""Run bids-validator-deno (installed in the venv by the test extra) on a BIDS folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def assert_bids_valid(root: Path) -> None:
    """Fail with the validator's errors unless ``root`` is a valid BIDS dataset."""
    validator = Path(sys.executable).parent / "bids-validator-deno"
    if not validator.exists():
        pytest.skip("bids-validator-deno is not installed in this environment")
    result = subprocess.run(
        [str(validator), "--format", "json", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    errors = [i for i in report["issues"]["issues"] if i.get("severity") == "error"]
    assert errors == [], errors
    assert result.returncode == 0
