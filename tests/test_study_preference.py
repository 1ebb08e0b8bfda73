"""``recall-lab study preference``: the participants' verdict over a whole study, its files, its
line in ``study status`` and its section in the study report.

Real judging sessions made by the demo (the fixture judged_sessions, tests/conftest.py) from a real
tiny generation with its reordered control, added to a real study folder, the CLI as a user
runs it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest

from app.cli import main

pytestmark = [
    # as in tests/test_generation_pipeline.py: diffusers' notices about its own internals
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


@pytest.mark.timeout(600)
def test_study_preference_summarises_the_judging_sessions_and_the_report_shows_it(
    reconstructed_session, judged_sessions, tmp_path, capsys
):
    judged = [Path(shutil.copy(f, tmp_path / f.name)) for f in judged_sessions]
    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    # The recall session that made the videos is in the study too: it holds no judgement.
    files = [*map(str, judged), str(reconstructed_session)]
    assert main(["study", "add", str(study), *files]) == 0
    capsys.readouterr()

    assert main(["study", "status", str(study)]) == 0
    text = capsys.readouterr().out
    assert text.count("1 preference judgement(s)") == 2
    assert main(["study", "status", str(study), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    assert sorted(r["preference_judgements"] for r in rows) == [0, 1, 1]

    assert main(["study", "preference", str(study)]) == 0
    out = capsys.readouterr().out
    assert "2 judging session(s) of 2 participant(s); 1 session file(s)" in out
    assert "of 2 judgements" in out and "binomial test against 50 %" in out
    assert "sub-P001: chose the reconstruction in" in out and "sub-P002" in out
    run1 = study / "derivatives/preference/run-001"
    assert f"summary: {run1 / 'summary.json'}" in out
    doc = json.loads((run1 / "summary.json").read_text())
    assert doc["summary"]["judgements"] == 2
    assert 0 <= doc["summary"]["chose_reconstruction"] <= 2
    assert list(doc["participants"]) == ["sub-P001", "sub-P002"]
    assert all(r["judgements"] == 1 and r["sessions"] == 1 for r in doc["participants"].values())
    # the simulated cursor follows what each video shows (tests/test_preference.py)
    assert doc["summary"]["correlation_reconstruction"]["mean_r"] > 0.5
    assert len(doc["skipped"]) == 1 and "no preference judgement" in doc["skipped"].values()
    assert all(a["stored"] == "/derived/study/run-001" for a in doc["sessions"].values())
    for rel in doc["sessions"]:
        with h5py.File(study / rel) as f:
            assert f["derived/study/run-001"].attrs["analysis"] == "preference"
    md = (run1 / "summary.md").read_text()
    assert "| participant | sessions | judgements | chose reconstruction |" in md
    assert "| sub-P002 | 1 | 1 |" in md and "binomial test against 50 %" in md
    assert not any(p.name.startswith(".") for p in run1.parent.iterdir())

    # A second run never overwrites the first; --no-write writes nothing at all.
    first = (run1 / "summary.json").read_bytes()
    assert main(["study", "preference", str(study)]) == 0
    assert "derivatives/preference/run-002/summary.json" in capsys.readouterr().out
    assert (run1 / "summary.json").read_bytes() == first
    assert main(["study", "preference", str(study), "--no-write", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["judgements"] == 2
    assert sorted(p.name for p in run1.parent.iterdir()) == ["run-001", "run-002"]
    assert main(["study", "status", str(study)]) == 0
    assert "last study preference: run-002, 2 judgement(s)" in capsys.readouterr().out

    # The report: no decode run yet, so the preference section alone.
    assert main(["study", "report", str(study)]) == 0
    page = (study / "derivatives/reports/run-001/index.html").read_text()
    assert "Preference: the reconstruction beside its reordered control" in page
    assert "derivatives/preference/run-002" in page
    assert "p, exact binomial test against 50 %" in page and "95 % CI" in page
    assert "sub-P001" in page and "sub-P002" in page and "mean r control" in page

    # The session that made the videos moved: one line naming the judging session and what
    # to do; nothing written. Its new place given: analysed again.
    rel = next(iter(doc["sessions"]))
    gone = tmp_path / "gone" / reconstructed_session.name
    with h5py.File(study / rel, "r+") as f:
        f.attrs["preference_source"] = str(gone)
    assert main(["study", "preference", str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert rel in err and str(gone) in err and "--reconstructions" in err
    assert sorted(p.name for p in run1.parent.iterdir()) == ["run-001", "run-002"]
    args = ["study", "preference", str(study), "--no-write", "--json"]
    assert main([*args, "--reconstructions", str(reconstructed_session)]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["judgements"] == 2


def test_a_decode_report_gets_the_preference_section_too(tmp_path, capsys):
    """A study with a decode run and a preference run: the decode report as before, with the
    newest preference run's section after it."""
    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    decode = study / "derivatives/decoding/runs/run-001"
    decode.mkdir(parents=True)
    m = {"f1_weighted": 0.6, "null_f1_weighted": [0.4, 0.5], "p_value": 0.3}
    decode.joinpath("summary.json").write_text(
        json.dumps(
            {"where": "serial", "seconds": 1.0,
             "participants": {"P01": {"status": "ok", "decoders": {"d": m}}}}
        )
    )  # fmt: skip
    row = {"sessions": 1, "chose_reconstruction": 4, "mean_r_reconstruction": 0.41}
    row["mean_r_control"] = None
    figures = {"chose_reconstruction": 4, "preference_rate": 0.8, "binomial_p": 0.375}
    figures["correlation_reconstruction"] = {"participants": 1, "mean_r": 0.41, "ci95": None}
    figures["correlation_control"] = {"participants": 0, "mean_r": None, "ci95": None}
    for run, judgements in (("run-001", 3), ("run-002", 5)):
        pref = study / "derivatives/preference" / run
        pref.mkdir(parents=True)
        doc = {"sessions": {"a": {}}, "skipped": {}}
        doc["participants"] = {"sub-P01": {**row, "judgements": judgements}}
        doc["summary"] = {**figures, "judgements": judgements}
        pref.joinpath("summary.json").write_text(json.dumps(doc))
    assert main(["study", "report", str(study)]) == 0
    page = (study / "derivatives/reports/run-001/index.html").read_text()
    assert "Decode run <code>derivatives/decoding/runs/run-001</code>" in page
    assert "f1_d.png" in page  # the decode part is unchanged
    assert page.index("Why the LEAKY") < page.index("Preference: the reconstruction")
    assert "derivatives/preference/run-002" in page and "80 %" in page and "0.3750" in page
    assert "<td>5</td>" in page and "0.410" in page


def test_a_study_without_judgements_is_one_line_and_writes_nothing(tmp_path, capsys):
    from test_generation_helpers import write_session

    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    plain = write_session(tmp_path / "plain.h5", participant="P009")
    assert main(["study", "add", str(study), str(plain)]) == 0
    capsys.readouterr()
    assert main(["study", "preference", str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "holds no preference judgement (1 session file(s) looked at)" in err
    assert not (study / "derivatives").exists()
    # nothing to report either: the decode message names the preference study too
    assert main(["study", "report", str(study)]) == 2
    assert "study preference" in capsys.readouterr().err
    assert main(["study", "preference", str(tmp_path / "nowhere")]) == 2
