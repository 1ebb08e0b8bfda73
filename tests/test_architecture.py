"""The house rules that keep recall-lab headless-capable and fast to start.

- Only ``app/`` imports Qt (drivers, protocols, data_schema, decoding, generation run on a
  server without a display).
- ``decoding/`` and ``generation/`` read sessions through ``data_schema/``, never through the app.
- ``recall-lab --help`` imports none of the heavy stacks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEADLESS_PACKAGES = ("drivers", "protocols", "data_schema", "decoding", "generation")
QT_MODULES = ("PyQt6", "PySide6", "PyQt5", "pyqtgraph", "pytestqt")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", HEADLESS_PACKAGES)
def test_only_app_imports_qt(package: str) -> None:
    offenders = [
        f"{p.relative_to(REPO)}:{line} imports {name}"
        for p in _modules(package)
        for line, name in _imports(p)
        if name.split(".")[0] in QT_MODULES
    ]
    assert not offenders, "Qt outside app/: " + "; ".join(offenders)


@pytest.mark.parametrize("package", ["decoding", "generation", "data_schema", "drivers"])
def test_offline_and_core_never_import_the_app(package: str) -> None:
    offenders = [
        f"{p.relative_to(REPO)}:{line} imports {name}"
        for p in _modules(package)
        for line, name in _imports(p)
        if name.split(".")[0] == "app"
    ]
    assert not offenders, "imports app/: " + "; ".join(offenders)


def test_help_is_fast_and_imports_no_heavy_stack() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ['torch', 'cebra', 'diffusers', 'transformers', 'mne', 'PyQt6', 'pyqtgraph',"
        " 'sklearn', 'brainflow', 'pylsl', 'matplotlib']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = out.stdout.strip()
    assert loaded == "", f"`recall-lab --help` imported heavy modules: {loaded}"
