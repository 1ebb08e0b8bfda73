"""DEAP preprocessed Python files (``sNN.dat``) import as sessions with music-listening blocks.

The files here are written in DEAP's layout (a pickled dict of numpy arrays, ``data`` trials x
40 x 8064, ``labels`` trials x 4), at pickle protocol 2 both as Python 3 writes it and as Python
2 did (``str`` opcodes, ``numpy.core.multiarray``), which is how the published files were made.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from data_schema.import_deap import (
    EEG_CHANNELS,
    GAP_S,
    RATE,
    read_deap_file,
    write_deap_session,
)
from data_schema.reader import read_session
from data_schema.summary import summarize_session

N_TRIALS = 3
N_SAMPLES = 63 * 128  # 3 s baseline + 60 s video at 128 Hz, as in DEAP
LABELS = np.array(
    [[6.71, 5.5, 7.02, 8.1], [1.0, 9.0, 3.335, 4.0], [2.123456, 7.77, 5.0, 1.99]],
    dtype=np.float64,
)


def deap_arrays(n_trials: int = N_TRIALS, seed: int = 0) -> dict[str, np.ndarray]:
    """DEAP-shaped arrays; channel 1 counts samples over the whole file so a lost or moved
    sample shows."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 20.0, (n_trials, 40, N_SAMPLES))
    data[:, 0, :] = np.arange(n_trials * N_SAMPLES).reshape(n_trials, N_SAMPLES)
    data[:, 36, :] = rng.uniform(1e5, 3e6, (n_trials, N_SAMPLES))  # GSR in ohm
    return {"labels": LABELS[:n_trials].copy(), "data": data}


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose opcodes can be changed
    """Pickles text and bytes as Python 2 ``str`` (BINSTRING), as cPickle did."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def write_deap(path: Path, arrays: dict | object, *, py2: bool = True) -> Path:
    if py2:
        import io

        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(arrays)
        # Python 2's numpy lived in numpy.core (numpy 2 calls it numpy._core).
        path.write_bytes(buf.getvalue().replace(b"numpy._core.", b"numpy.core."))
    else:
        with open(path, "wb") as f:
            pickle.dump(arrays, f, protocol=2)
    return path


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def value(e) -> dict:
    return json.loads(e.value)


# ----------------------------------------------------------------------------- reading
@pytest.mark.parametrize("py2", [True, False])
def test_both_pickle_flavours_read_back_exactly(tmp_path, py2):
    arrays = deap_arrays()
    p = read_deap_file(write_deap(tmp_path / "s07.dat", arrays, py2=py2))
    assert p.number == 7 and p.file_name == "s07.dat"
    assert p.n_trials == N_TRIALS and p.n_samples == N_SAMPLES and p.listening_s == 60.0
    assert p.data.dtype == np.float64 and np.array_equal(p.data, arrays["data"])
    assert np.array_equal(p.labels, LABELS)


# ----------------------------------------------------------------------------- round trip
@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    d = tmp_path_factory.mktemp("deap")
    arrays = deap_arrays()
    src = write_deap(d / "s01.dat", arrays)
    out = d / "deap01.h5"
    assert main(["import", str(src), "--out", str(out), "--participant", "DEAP01"]) == 0
    return arrays, src, out, read_session(out)


def test_file_says_where_it_came_from(imported):
    _, _, _, s = imported
    assert s.attrs["imported_from"] == "s01.dat"
    assert s.attrs["import_format"] == "deap-preprocessed-python"
    assert s.attrs["participant_id"] == "DEAP01"
    assert s.attrs["protocol"] == "deap"
    assert set(s.streams) == {"eeg", "peripheral"}


def test_channels_names_types_units(imported):
    _, _, _, s = imported
    eeg, peri = s.streams["eeg"].info, s.streams["peripheral"].info
    assert eeg.channel_names == list(EEG_CHANNELS) and len(EEG_CHANNELS) == 32
    assert eeg.channel_names[:4] == ["Fp1", "AF3", "F3", "F7"] and eeg.channel_names[-1] == "O2"
    assert eeg.channel_types == ["eeg"] * 32 and eeg.units == ["uV"] * 32
    assert peri.channel_names == [
        "hEOG",
        "vEOG",
        "zEMG",
        "tEMG",
        "GSR",
        "Respiration belt",
        "Plethysmograph",
        "Temperature",
    ]
    assert peri.channel_types == ["eog", "eog", "emg", "emg", "gsr", "resp", "misc", "temperature"]
    assert peri.units == ["uV"] * 4 + ["Ohm", "a.u.", "a.u.", "a.u."]
    assert eeg.nominal_rate == peri.nominal_rate == 128.0
    assert eeg.description["filters"] == {"highpass": 4.0, "lowpass": 45.0}
    assert eeg.description["deap_participant"] == 1


def test_samples_are_the_files_in_float32(imported):
    """The session stores float32 (the spec's sample type); DEAP's arrays are float64. Every
    stored value is the float64 value rounded once to float32, and no sample is lost."""
    arrays, _, _, s = imported
    data = arrays["data"]
    want_eeg = np.concatenate([t[:32].T for t in data])
    want_peri = np.concatenate([t[32:].T for t in data])
    for name, want in (("eeg", want_eeg), ("peripheral", want_peri)):
        got = s.streams[name].data
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(got, want.astype(np.float32))
        np.testing.assert_allclose(got, want, rtol=np.finfo(np.float32).eps, atol=0)
    counter = s.streams["eeg"].data[:, 0]
    assert np.array_equal(counter, np.arange(N_TRIALS * N_SAMPLES, dtype=np.float32))


def test_trials_are_end_to_end_with_marked_gaps(imported):
    _, _, _, s = imported
    for name in ("eeg", "peripheral"):
        ts = s.streams[name].timestamps
        steps = np.diff(ts)
        big = np.flatnonzero(steps > 1.0)
        assert big.tolist() == [N_SAMPLES * k - 1 for k in range(1, N_TRIALS)]
        np.testing.assert_allclose(np.delete(steps, big), 1 / RATE, atol=1e-9)
        np.testing.assert_allclose(steps[big], GAP_S + 1 / RATE, atol=1e-9)
        starts = s.events_where(source="recorder", label="gap_start")
        ends = s.events_where(source="recorder", label="gap_end")
        starts = [e for e in starts if e.value == name]
        ends = [e for e in ends if e.value == name]
        assert len(starts) == len(ends) == N_TRIALS - 1
        for i, (a, b) in enumerate(zip(starts, ends)):
            last = ts[big[i]]
            assert a.timestamp == pytest.approx(last + 1 / RATE, abs=1e-9)
            assert b.timestamp == pytest.approx(ts[big[i] + 1], abs=1e-9)
            assert b.duration == pytest.approx(GAP_S, abs=1e-9)
    summary = {st.name: st for st in summarize_session(imported[2]).streams}
    assert summary["eeg"].gaps == N_TRIALS - 1
    assert summary["eeg"].measured_rate == pytest.approx(RATE, rel=1e-6)


def _phases(s, kind: str) -> list[tuple[dict, float, float]]:
    starts = [e for e in s.events_where(source="protocol", label="phase_start")]
    ends = [e for e in s.events_where(source="protocol", label="phase_end")]
    out = []
    for a in starts:
        if value(a)["kind"] != kind:
            continue
        (b,) = [e for e in ends if value(e) == value(a)]
        out.append((value(a), a.timestamp, b.timestamp))
    return out


def test_listening_phases_clips_and_baselines(imported):
    _, _, _, s = imported
    ts = s.streams["eeg"].timestamps
    listening = _phases(s, "listening")
    assert [v["phase"] for v, _, _ in listening] == ["deap-01", "deap-02", "deap-03"]
    for k, (v, start, end) in enumerate(listening):
        clip = f"deap-{k + 1:02d}"
        assert v == {
            "phase": clip,
            "kind": "listening",
            "memory": None,
            "block": "deap",
            "clip": clip,
        }
        assert end - start + 1 / RATE == pytest.approx(60.0, abs=1e-9)
        inside = (ts >= start - 1e-9) & (ts <= end + 1e-9)
        assert int(inside.sum()) == 60 * 128
        # The video's samples are the last 60 s of the trial.
        assert np.flatnonzero(inside)[0] == k * N_SAMPLES + 3 * 128
    baselines = _phases(s, "baseline")
    assert [v["phase"] for v, _, _ in baselines] == [f"deap-0{k}-baseline" for k in (1, 2, 3)]
    for (v, start, end), (_, lstart, _) in zip(baselines, listening):
        assert v["clip"] == v["phase"][: len("deap-01")] and v["block"] == "deap"
        assert end - start + 1 / RATE == pytest.approx(3.0, abs=1e-9)
        assert lstart == pytest.approx(end + 1 / RATE, abs=1e-9)
    clip_start = s.events_where(source="stimulus", label="clip_start")
    clip_end = s.events_where(source="stimulus", label="clip_end")
    assert [value(e) for e in clip_start] == [
        {
            "clip": f"deap-0{k}",
            "block": "deap",
            "file": None,
            "sha256": None,
            "title": f"DEAP video 0{k}",
            "offset": 0.0,
            "output_latency": None,
        }
        for k in (1, 2, 3)
    ]
    assert [value(e) for e in clip_end] == [
        {"clip": f"deap-0{k}", "block": "deap", "played": 60.0} for k in (1, 2, 3)
    ]
    for a, b, (_, start, _) in zip(clip_start, clip_end, listening):
        assert a.timestamp == start and b.timestamp == pytest.approx(start + 60.0, abs=1e-9)


def test_ratings_are_the_labels_inside_a_rating_phase(imported):
    _, _, _, s = imported
    ratings = _phases(s, "sam")
    assert [v["phase"] for v, _, _ in ratings] == [f"deap-0{k}-rating" for k in (1, 2, 3)]
    ts = s.streams["eeg"].timestamps
    for k, (v, start, end) in enumerate(ratings):
        assert v["clip"] == f"deap-0{k + 1}" and v["block"] == "deap" and v["memory"] is None
        assert end - start + 1 / RATE == pytest.approx(1.0, abs=1e-9)
        assert start == pytest.approx(ts[(k + 1) * N_SAMPLES - 1] + 1 / RATE, abs=1e-9)
        for j, scale in enumerate(("valence", "arousal", "dominance", "liking")):
            (e,) = [
                e
                for e in s.events_where(source="participant", label=f"sam_{scale}")
                if start <= e.timestamp <= end
            ]
            assert e.value == repr(round(float(LABELS[k, j]), 4))
            assert float(e.value) == pytest.approx(LABELS[k, j], abs=5e-5)
    assert s.events_where(label="sam_valence")[0].value == "6.71"
    assert s.events_where(label="sam_valence")[2].value == "2.1235"
    assert s.events_where(label="sam_arousal")[1].value == "9.0"


def test_import_validates_and_leaves_the_input_alone(imported, capsys):
    arrays, src, out, _ = imported
    rc, _, err = cli(["validate", str(out)], capsys)
    assert rc == 0, err
    assert np.array_equal(read_deap_file(src).data, arrays["data"])


def test_cli_reports_what_it_wrote(tmp_path, capsys):
    src = write_deap(tmp_path / "s02.dat", deap_arrays(1), py2=False)
    rc, out, err = cli(
        ["import", str(src), "--out", str(tmp_path / "x.h5"), "--participant", "P002"], capsys
    )
    assert rc == 0 and err == ""
    assert "deap-preprocessed-python (s02.dat, DEAP participant 2)" in out
    assert "eeg 8064 x 32 @ 128 Hz" in out and "1 trials of 60 s music" in out


# ----------------------------------------------------------------------------- bad inputs
def _refused(tmp_path, capsys, src: Path, out: Path | None = None, **kw) -> str:
    out = out or tmp_path / "out.h5"
    existed = out.exists()
    before = out.read_bytes() if existed else None
    src_before = src.read_bytes() if src.is_file() else None
    rc, stdout, err = cli(
        ["import", str(src), "--out", str(out), "--participant", kw.get("pid", "P001")], capsys
    )
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and stdout == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("recall-lab import: error: ")
    if existed:
        assert out.read_bytes() == before
    else:
        assert not out.exists()
    assert list(tmp_path.glob("*.h5")) == ([out] if existed else [])
    if src_before is not None:
        assert src.read_bytes() == src_before
    return line


def test_a_text_file_named_dat_is_refused(tmp_path, capsys):
    src = tmp_path / "s01.dat"
    src.write_text("trial,value\n1,2\n")
    line = _refused(tmp_path, capsys, src)
    assert "s01.dat: not a DEAP preprocessed file" in line and "not a Python pickle" in line


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        (
            {"data": np.zeros((3, 32, N_SAMPLES)), "labels": LABELS},
            "'data' has shape (3, 32, 8064)",
        ),
        ({"data": np.zeros((3, 40, 400)), "labels": LABELS}, "at least 512"),
        ({"data": np.zeros((3, 40, N_SAMPLES)), "labels": LABELS[:2]}, "'labels' has shape (2, 4)"),
        ({"data": np.zeros((41, 40, 512)), "labels": np.ones((41, 4))}, "41 trials"),
        ({"data": np.zeros((3, 40, N_SAMPLES))}, "no 'labels'"),
        ([1, 2, 3], "holds a list"),
        ({"data": "x" * 10, "labels": LABELS}, "not an array of numbers"),
        ({"data": np.zeros((3, 40, N_SAMPLES)), "labels": LABELS * 2}, "outside the 1-9 scale"),
    ],
)
def test_wrong_layouts_are_refused(tmp_path, capsys, arrays, words):
    line = _refused(tmp_path, capsys, write_deap(tmp_path / "s01.dat", arrays, py2=False))
    assert words in line, line


def test_values_that_are_not_finite_are_refused(tmp_path, capsys):
    arrays = deap_arrays(1)
    arrays["data"][0, 5, 100] = np.nan
    line = _refused(tmp_path, capsys, write_deap(tmp_path / "s01.dat", arrays))
    assert "'data' holds 1 values that are not finite" in line


def test_a_pickle_never_runs_code(tmp_path, capsys):
    """Only numpy arrays are built: a pickle that would call a function is refused, unrun."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    src = tmp_path / "s01.dat"
    src.write_bytes(pickle.dumps({"data": Evil(), "labels": LABELS}, protocol=2))
    line = _refused(tmp_path, capsys, src)
    assert "only numpy arrays are loaded" in line
    assert not marker.exists()


def test_an_existing_out_is_never_overwritten(tmp_path, capsys):
    src = write_deap(tmp_path / "s01.dat", deap_arrays(1))
    out = tmp_path / "taken.h5"
    out.write_bytes(b"someone else's file")
    assert "already exists" in _refused(tmp_path, capsys, src, out)


def test_a_bad_pseudonym_is_refused_before_reading(tmp_path, capsys):
    src = tmp_path / "s01.dat"
    src.write_text("not even a pickle")
    assert "not a pseudonym" in _refused(tmp_path, capsys, src, pid="Jane Doe")


def test_an_interrupted_import_leaves_no_file(tmp_path):
    deap = read_deap_file(write_deap(tmp_path / "s01.dat", deap_arrays()))

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first trial

    with pytest.raises(KeyboardInterrupt):
        write_deap_session(deap, tmp_path / "x.h5", participant_id="P001", progress=stop)
    assert not (tmp_path / "x.h5").exists()


# ----------------------------------------------------------------------------- folders
def test_a_folder_becomes_one_session_per_participant(tmp_path, capsys):
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    for n in (1, 2, 12):
        write_deap(folder / f"s{n:02d}.dat", deap_arrays(1, seed=n))
    (folder / "readme.txt").write_text("not a participant")
    out = tmp_path / "sessions"
    rc, stdout, err = cli(
        ["import", str(folder), "--out", str(out), "--participant", "DEAP"], capsys
    )
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["DEAP01.h5", "DEAP02.h5", "DEAP12.h5"]
    assert "wrote 3 sessions" in stdout
    for n in (1, 2, 12):
        s = read_session(out / f"DEAP{n:02d}.h5")
        assert s.attrs["participant_id"] == f"DEAP{n:02d}"
        assert s.attrs["imported_from"] == f"s{n:02d}.dat"
        np.testing.assert_array_equal(
            s.streams["eeg"].data, deap_arrays(1, seed=n)["data"][0, :32].T.astype(np.float32)
        )
    # A second run refuses: every participant's file exists.
    rc, _, err = cli(["import", str(folder), "--out", str(out), "--participant", "DEAP"], capsys)
    assert rc == 2 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_a_folder_with_one_bad_file_leaves_nothing(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_deap(folder / "s01.dat", deap_arrays(1))
    (folder / "s02.dat").write_bytes(b"\x00" * 100)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "sessions"
    rc, stdout, err = cli(
        ["import", str(folder), "--out", str(out), "--participant", "DEAP"], capsys
    )
    assert rc == 2 and stdout == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "s02.dat: not a DEAP preprocessed file" in line
    assert not out.exists()  # the session written for s01 is gone, and the folder made for it
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_folder_needs_a_folder_out(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_deap(folder / "s01.dat", deap_arrays(1))
    rc, _, err = cli(
        ["import", str(folder), "--out", str(tmp_path / "x.h5"), "--participant", "DEAP"],
        capsys,
    )
    assert rc == 2 and "give a folder" in err and not (tmp_path / "x.h5").exists()
