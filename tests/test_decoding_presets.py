"""Decoding presets are files a user can read, copy and edit; ``--config`` goes on top."""

from __future__ import annotations

import pytest

from app.cli import main
from data_schema.errors import ConfigError
from decoding.config import DecodeConfig, load_config, preset_names


def test_the_default_preset_is_exactly_the_defaults():
    """``default.yaml`` documents the defaults: it must never drift from the code."""
    assert load_config(preset="default").to_dict() == DecodeConfig().to_dict()


def test_every_preset_loads_and_a_config_file_changes_it_further(tmp_path):
    assert {"default", "quick"} <= set(preset_names())
    for name in preset_names():
        load_config(preset=name)
    quick = load_config(preset="quick")
    assert quick.cebra.max_iterations == 100 and quick.evaluation.n_permutations == 19
    own = tmp_path / "mine.yaml"
    own.write_text("evaluation:\n  n_permutations: 3\n")
    both = load_config(own, preset="quick")
    # The file changes only what it names; the preset's other settings stay.
    assert both.evaluation.n_permutations == 3
    assert both.evaluation.n_permutations_refit == 5 and both.cebra.max_iterations == 100
    assert both.cebra.consistency_runs == 0 and both.windows.length == 1.0


def test_unknown_preset_or_bad_field_is_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"no such preset; presets: .*quick"):
        load_config(preset="nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cebra:\n  max_iteration: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: cebra.max_iteration: unknown field"):
        load_config(bad, preset="quick")
    session = tmp_path / "s.h5"
    session.write_bytes(b"")
    assert main(["decode", str(session), "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such preset" in err[0]
