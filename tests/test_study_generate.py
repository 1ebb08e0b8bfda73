"""``recall-lab study generate``: every memory of a study reconstructed as ``generate`` does it,
one task per memory, here and on a local Dask cluster, with tiny random models loaded from the
models folder."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from test_generation_helpers import write_session

from app.cli import main

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

FAST = ["--steps", "1", "--fps", "8", "--crossfade", "0.5", "--transition", "0.5",
        "--animation", "none", "--no-evaluate", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models") / "models"
    assert main(["models", "make-tiny", str(d), "--only", "stable-diffusion"]) == 0
    assert main(["models", "make-tiny", str(d), "--only", "musicgen-melody"]) == 0
    return d


def _study(tmp_path: Path) -> Path:
    files = [
        write_session(tmp_path / "a.h5", participant="P001", recall=8.0, memories=("m1", "m2")),
        write_session(tmp_path / "b.h5", participant="P002", recall=8.0),
        write_session(tmp_path / "quiet.h5", participant="P003", recall=8.0, presses=False),
    ]
    root = tmp_path / "study"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), *map(str, files)]) == 0
    return root


def _generate(root: Path, models: Path, *extra: str) -> int:
    return main(["study", "generate", str(root), "--models", str(models), *FAST, *extra])


def _runs(root: Path) -> dict[str, dict]:
    summary = next((root / "derivatives/generation/runs").glob("run-*/summary.json"))
    return json.loads(summary.read_text())["sessions"]


@pytest.mark.parametrize("where", [["--jobs", "1"], ["--jobs", "2"]], ids=["serial", "dask"])
def test_every_memory_is_reconstructed_and_recorded_once(models, tmp_path, capsys, where):
    root = _study(tmp_path)
    assert _generate(root, models, *where) == 0
    out = capsys.readouterr().out
    assert "3 memory(ies) in 2 session(s)" in out and "no valence reports" in out
    sessions = _runs(root)
    assert sorted(sessions) == sorted(
        str(p.relative_to(root)) for p in root.glob("sub-P00[12]/ses-*/*.h5")
    )
    for file, r in sessions.items():
        assert r["status"] == "ok"
        folder = root / r["folder"]
        assert folder.name == "run-001" and folder.parent.parent.name == f"sub-{r['subject']}"
        for memory, video in r["videos"].items():
            assert (root / video).stat().st_size > 0
            manifest = json.loads((folder / memory / "manifest.json").read_text())
            assert manifest["segments"]
        with h5py.File(root / file, "r") as f:
            runs = list(f["derived/generation"])
            assert runs == ["run-001"]  # recorded once, even where Dask ran a task again
            assert set(f["derived/generation/run-001"]) == set(r["videos"])
    # No partial folder is left anywhere.
    assert not list((root / "derivatives").rglob(".run-partial-*"))


def test_missing_models_stop_before_any_work(tmp_path, capsys):
    root = _study(tmp_path)
    empty = tmp_path / "no-models"
    empty.mkdir()
    rc = main(["study", "generate", str(root), "--models", str(empty), *FAST, "--jobs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "stable-diffusion" in err[0]
    assert not (root / "derivatives").exists()
