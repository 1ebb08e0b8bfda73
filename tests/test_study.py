"""``recall-lab study``: a folder of many participants' sessions, with BIDS-style names.

Real simulated sessions (``decoding.simulate``), real HDF5, the CLI as a user runs it, and the
BIDS export checked by bids-validator-deno.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from bids_check import assert_bids_valid

from app.cli import main
from decoding.simulate import SimulationSettings, simulate_session

SHORT = {"duration": 40.0, "n_channels": 4, "sfreq": 100.0, "recall": 15.0, "baseline": 5.0}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("recordings")
    out = {}
    for key, pid, seed in (("a1", "P-01x", 1), ("a2", "P-01x", 2), ("b1", "P02", 3)):
        out[key] = simulate_session(
            d / f"{key}.h5", SimulationSettings(seed=seed, participant_id=pid, **SHORT)
        )
    return out


def _snapshot(paths) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


def test_init_makes_a_study_and_refuses_a_used_folder(tmp_path, capsys):
    assert main(["study", "init", str(tmp_path / "s"), "--name", "pilot"]) == 0
    assert "study 'pilot' made" in capsys.readouterr().out
    assert (tmp_path / "s" / "study.yaml").is_file()
    assert main(["study", "init", str(tmp_path / "s")]) == 2
    assert "already a study" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("mine")
    assert main(["study", "init", str(busy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not empty" in err and len(err.splitlines()) == 1
    assert main(["study", "status", str(busy)]) == 2
    assert "is not a study" in capsys.readouterr().err


def test_add_names_files_by_participant_visit_and_run_and_never_changes_inputs(
    recordings, tmp_path, capsys
):
    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    before = _snapshot(recordings.values())
    args = ["study", "add", str(study), *map(str, recordings.values())]
    assert main(args) == 0
    out = capsys.readouterr().out
    # Same participant, same day: one visit, two runs; the pseudonym's letters and digits.
    a1 = study / "sub-P01x/ses-01/sub-P01x_ses-01_task-simulatedrecall_run-01_eeg.h5"
    a2 = study / "sub-P01x/ses-01/sub-P01x_ses-01_task-simulatedrecall_run-02_eeg.h5"
    b1 = study / "sub-P02/ses-01/sub-P02_ses-01_task-simulatedrecall_run-01_eeg.h5"
    for p in (a1, a2, b1):
        assert p.is_file() and str(p.relative_to(study)) in out
    assert a1.read_bytes() == recordings["a1"].read_bytes()  # a copy, byte for byte
    assert _snapshot(recordings.values()) == before
    with h5py.File(a1, "r") as f:
        assert f.attrs["participant_id"] == "P-01x"  # the exact pseudonym stays in the file
    assert not list(study.rglob(".*.part"))

    # A later visit chosen by hand; the same file twice and a damaged file are one line
    # each, and the other files still go in.
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a session")
    fresh = simulate_session(
        tmp_path / "c.h5", SimulationSettings(seed=9, participant_id="P02", **SHORT)
    )
    rc = main(["study", "add", str(study), str(recordings["b1"]), str(junk), str(fresh),
               "--session", "02", "--task", "recall"])  # fmt: skip
    assert rc == 1
    cap = capsys.readouterr()
    errors = cap.err.strip().splitlines()
    assert any("already in the study as sub-P02/ses-01/" in e for e in errors), errors
    assert any(e.startswith("not added: ") and "junk.h5" in e for e in errors), errors
    assert errors[-1] == "2 of 3 file(s) not added"
    assert (study / "sub-P02/ses-02/sub-P02_ses-02_task-recall_run-01_eeg.h5").is_file()
    assert junk.read_bytes() == b"not a session"


def test_two_pseudonyms_with_one_label_are_refused(recordings, tmp_path, capsys):
    study = tmp_path / "study"
    main(["study", "init", str(study)])
    main(["study", "add", str(study), str(recordings["a1"])])
    clash = simulate_session(
        tmp_path / "clash.h5", SimulationSettings(seed=4, participant_id="P01x", **SHORT)
    )
    assert main(["study", "add", str(study), str(clash)]) == 1
    err = capsys.readouterr().err
    assert "'P01x' and the study's 'P-01x' both become sub-P01x" in err


def test_status_lists_participants_results_and_what_is_wrong(recordings, tmp_path, capsys):
    study = tmp_path / "study"
    main(["study", "init", str(study)])
    main(["study", "add", str(study), *map(str, recordings.values())])
    capsys.readouterr()
    # One file damaged inside the study: status says so and goes on.
    damaged = study / "sub-P02/ses-01/sub-P02_ses-01_task-simulatedrecall_run-01_eeg.h5"
    damaged.write_bytes(damaged.read_bytes()[:4000])
    assert main(["study", "status", str(study)]) == 0
    text = capsys.readouterr().out
    assert "2 participant(s), 3 session file(s)" in text
    assert "sub-P01x" in text and "sub-P02" in text
    assert "UNREADABLE" in text and "run-01_eeg.h5: UNREADABLE" in text
    assert "valence report(s); not decoded yet" in text
    assert main(["study", "status", str(study), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    ok = [r for r in rows if r["ok"]]
    assert len(ok) == 2 and all(r["channels"] == 4 and r["rate"] == 100.0 for r in ok)
    assert all(r["valence_reports"] > 0 and r["seconds"] > 30 for r in ok)
    assert [r["participant_id"] for r in ok] == ["P-01x", "P-01x"]


def test_export_writes_one_valid_bids_dataset(recordings, tmp_path, capsys):
    study = tmp_path / "study"
    main(["study", "init", str(study)])
    main(["study", "add", str(study), *map(str, recordings.values())])
    before = _snapshot(p for p in study.rglob("*.h5"))
    out = tmp_path / "bids"
    assert main(["study", "export", str(study), "--out", str(out), "--line-freq", "50"]) == 0
    assert "3 of 3 session(s)" in capsys.readouterr().out
    for name in (
        "sub-P01x/ses-01/eeg/sub-P01x_ses-01_task-simulatedrecall_run-01_eeg.vhdr",
        "sub-P01x/ses-01/eeg/sub-P01x_ses-01_task-simulatedrecall_run-02_eeg.vhdr",
        "sub-P02/ses-01/eeg/sub-P02_ses-01_task-simulatedrecall_run-01_events.tsv",
    ):
        assert (out / name).is_file(), name
    participants = (out / "participants.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in participants[1:]] == ["sub-P01x", "sub-P02"]
    assert (out / "participants.json").is_file()
    assert_bids_valid(out)
    assert _snapshot(p for p in study.rglob("*.h5")) == before
    # Into a folder that is not empty: refused, nothing written.
    assert main(["study", "export", str(study), "--out", str(out)]) == 2


def test_continuous_ratings_count_as_valence_reports(tmp_path, capsys):
    """A session rated with the continuous cursor holds its reports in a ``valence`` stream,
    not in key events: status must count them, or study decode would leave it out."""
    import numpy as np

    from data_schema.types import StreamInfo
    from data_schema.writer import SessionWriter

    path = tmp_path / "rated.h5"
    w = SessionWriter(path, participant_id="P05", protocol="rym_recall")
    for name, n_ch, rate in (("eeg", 4, 100.0), ("valence", 1, 10.0)):
        w.add_stream(
            name,
            StreamInfo(name=name, channel_names=[f"c{i}" for i in range(n_ch)],
                       channel_types=["eeg" if name == "eeg" else "misc"] * n_ch,
                       units=["uV" if name == "eeg" else "a.u."] * n_ch, nominal_rate=rate),
        )  # fmt: skip
        t = np.arange(int(20 * rate)) / rate
        w.append(name, np.zeros((len(t), n_ch), np.float32) + 0.5, t)
    w.close()
    study = tmp_path / "study"
    main(["study", "init", str(study)])
    assert main(["study", "add", str(study), str(path)]) == 0
    capsys.readouterr()
    assert main(["study", "status", str(study), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["sessions"]
    assert row["ok"] and row["valence_reports"] == 200
