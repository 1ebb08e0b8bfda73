"""Group statistics across a study's participants, and the study report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from decoding.group import group_result, sign_flip_p, summed_null_p


def _participant(f1, null, p=None, leaky=None):
    return {
        "status": "ok",
        "decoders": {
            "d": {
                "f1_weighted": f1,
                "null_f1_weighted": list(null),
                "p_value": p,
                "leaky_f1_weighted": leaky,
            }
        },
    }


def test_sign_flip_is_exact_for_small_groups():
    # 4 positive differences: only the all-positive flip reaches the observed mean.
    p, exact = sign_flip_p(np.array([0.1, 0.2, 0.3, 0.4]))
    assert exact and p == pytest.approx(1 / 16)
    # Differences centred on zero give no evidence.
    p, _ = sign_flip_p(np.array([0.1, -0.1, 0.2, -0.2]))
    assert p > 0.4
    p, exact = sign_flip_p(np.full(20, 0.05))
    assert not exact and p < 1e-4


def test_summed_null_never_claims_more_than_the_nulls_resolve():
    nulls = [np.linspace(0.3, 0.5, 9)] * 3
    p = summed_null_p(np.array([0.9, 0.9, 0.9]), nulls)
    # The observed value is one of 10 equally likely per participant: at best (1/10)^3.
    assert p >= 1e-3 * 0.5
    assert summed_null_p(np.array([0.4, 0.4, 0.4]), nulls) > 0.3
    assert summed_null_p(np.array([0.9]), [np.array([])]) is None


def test_group_figures_from_participants():
    rng = np.random.default_rng(0)
    above = {f"S{i}": _participant(0.7 + 0.01 * i, rng.normal(0.5, 0.03, 99), 0.01, 0.95)
             for i in range(6)}  # fmt: skip
    g = group_result("d", above)
    assert g.n == 6 and g.mean_f1 == pytest.approx(0.725)
    assert g.mean_difference == pytest.approx(g.mean_f1 - g.mean_chance)
    assert g.ci95[0] > 0.15 and g.ci95[1] < 0.3
    assert g.p_sign_flip == pytest.approx(1 / 64) and g.sign_flip_exact
    assert g.p_summed_null < 0.001
    assert g.fraction_above_chance == 1.0 and g.leaky_mean_f1 == pytest.approx(0.95)
    # At chance: nothing to report, whatever the leaky figure says.
    at_chance = {f"S{i}": _participant(0.5 + (0.02 if i % 2 else -0.02),
                                       rng.normal(0.5, 0.03, 99), 0.5, 0.95)
                 for i in range(6)}  # fmt: skip
    g = group_result("d", at_chance)
    assert g.ci95[0] < 0 < g.ci95[1] and g.p_sign_flip > 0.2 and g.p_summed_null > 0.2
    assert g.fraction_above_chance == 0.0
    # Failed participants are left out; one participant is not a group.
    one = {"S0": above["S0"], "S1": {"status": "failed", "reason": "x"}}
    assert group_result("d", one) is None


def test_the_report_shows_group_and_honest_figures_beside_the_leaky_ones(tmp_path, capsys):
    """A real (serial) study decode of three simulated participants, then its report."""
    from app.cli import main
    from decoding.simulate import SimulationSettings, simulate_session

    files = [
        simulate_session(
            tmp_path / f"p{i}.h5",
            SimulationSettings(
                seed=i,
                participant_id=f"P0{i}",
                duration=90.0,
                n_channels=6,
                sfreq=125.0,
                recall=30.0,
                baseline=10.0,
                effect=1.0,
            ),
        )
        for i in range(3)
    ]
    (tmp_path / "d.yaml").write_text(
        "decoders: [bandpower_logreg]\nevaluation:\n  n_permutations: 19\n"
    )
    study = tmp_path / "study"
    assert main(["study", "report", str(tmp_path)]) == 2  # not a study: one line
    main(["study", "init", str(study)])
    main(["study", "add", str(study), *map(str, files)])
    assert main(["study", "report", str(study)]) == 2
    assert "no study decode yet" in capsys.readouterr().err
    assert main(["study", "decode", str(study), "--config", str(tmp_path / "d.yaml"),
                 "--jobs", "1", "--quiet"]) == 0  # fmt: skip
    assert main(["study", "report", str(study)]) == 0
    index = study / "derivatives/reports/run-001/index.html"
    assert str(index) in capsys.readouterr().out
    page = index.read_text()
    for img in re.findall(r"src='([^']+)'", page):
        assert (index.parent / img).is_file(), img  # opens with no server: files beside it
    assert "trajectory_sub-P00.png" in page and "f1_bandpower_logreg.png" in page
    assert "mean difference from chance [95 % CI]" in page
    assert "Why the LEAKY figure is not evidence" in page
    group = json.loads((index.parent / "group.json").read_text())["bandpower_logreg"]
    assert group["n"] == 3 and group["mean_difference"] > 0.1  # a strong simulated effect
    assert "channels used" in page and "Fp1, Fp2, AF3, AF4, F7, F3" in page
