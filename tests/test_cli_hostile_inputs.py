"""Every command against damaged and hostile inputs (issue 9).

Each input of ``tests/hostile_corpus.py`` goes through every command that reads a file. A
command may refuse, but only with a documented exit status (0 ok, 1 failure, 2 bad input,
3 disk full; ``recall-lab --help``), one ``recall-lab CMD: error: ...`` line instead of a
traceback, and without changing its input. Most commands run in this process through
``app.cli.main`` (fast); ``replay`` runs in a subprocess with a time limit because a hang is
one of the ways it failed.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from hostile_corpus import BUILDERS, build_corpus

from app.cli import main
from data_schema.reader import UnclosedSessionWarning

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED_EXITS = {0, 1, 2, 3}

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pandas module was not found:ImportWarning"),
]

# Fast decoding: one band-power decoder, no permutations to speak of, no MNE montage work.
TINY_DECODE = (
    "decoders: [bandpower_logreg]\n"
    "preprocess: {montage: null, bad_channels: false, line_freq: null, resample: null}\n"
    "cebra: {consistency_runs: 0}\n"
    "evaluation: {n_permutations: 2, n_permutations_refit: 0}\n"
)


def _argv(command: str, path: Path, out: Path, config: Path) -> list[str]:
    return {
        "info": ["info", str(path)],
        "validate": ["validate", str(path)],
        "replay": ["replay", str(path), "--speed", "max", "--quiet"],
        "export": ["export", str(path), "--format", "edf", "--out", str(out / "x.edf")],
        "decode": ["decode", str(path), "--config", str(config), "--report", str(out / "rep")],
        "generate": ["generate", str(path), "--out", str(out / "gen"), "--models", str(out)],
        "simulate": ["simulate", "--out", str(path), "--duration", "60", "--channels", "4"],
        "import": ["import", str(path), "--out", str(out / "imp.h5"), "--participant", "P001"],
        "record": [
            "record",
            "--source",
            f"replay:{path}?speed=5",
            "--duration",
            "1",
            "--out",
            str(out / "rec.h5"),
            "--quiet",
        ],
        "demo": [
            "demo",
            "--source",
            f"replay:{path}",
            "--out",
            str(out / "demo.h5"),
            "--time-scale",
            "0.01",
            "--no-offline",
            "--quiet",
        ],
    }[command]


# Every command that reads a file, and `simulate` pointed at one (it must refuse to overwrite).
# `boards`, `models` and `app` read no session file.
COMMANDS = (
    "simulate",
    "info",
    "validate",
    "replay",
    "export",
    "decode",
    "generate",
    "import",
    "record",
    "demo",
)
SUBPROCESS = {"replay"}

# What each input must give, beyond "no traceback, documented exit, input unchanged":
# (command or "*") -> (exit status, text the error line must hold).
EXPECTED: dict[str, dict[str, tuple[int, str]]] = {
    "cut": {"*": (2, "damaged file")},
    "flipped": {"*": (2, "damaged file")},
    "nan_eeg": {
        "validate": (1, ""),
        "export": (2, "not finite"),
        "decode": (2, "validate"),
        "replay": (2, "no finite sample"),
        "record": (2, "no finite sample"),  # replay:<file> as a source records nothing of it
    },
    "nan_timestamps": {
        "validate": (1, ""),
        "replay": (2, "not finite"),
        "decode": (2, "validate"),
    },
    "no_eeg": {"validate": (1, "")},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    corpus = build_corpus(d / "in")
    (d / "tiny.yaml").write_text(TINY_DECODE)
    return corpus


def _digest(path: Path) -> str:
    if path.is_dir():
        return "folder:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _in_process(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``recall-lab ARGV`` run through ``app.cli.main``."""
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as on the command line: printed, not raised
        warnings.simplefilter("ignore", UnclosedSessionWarning)  # expected of these inputs
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # what a user would see as a traceback
            import traceback

            return -1, "Traceback (in process)\n" + "".join(traceback.format_exception(exc))
    return rc, capsys.readouterr().err


def _subprocess(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return -2, "(no result within 60 s: the command hangs)"
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(BUILDERS))
def test_hostile_input(corpus, case, command, tmp_path, capsys):
    path = corpus[case]
    before = _digest(path)
    argv = _argv(command, path, tmp_path, path.parent.parent / "tiny.yaml")
    t0 = time.monotonic()
    rc, err = _subprocess(argv) if command in SUBPROCESS else _in_process(argv, capsys)
    took = time.monotonic() - t0
    assert "Traceback" not in err, err
    assert rc in DOCUMENTED_EXITS, (rc, err)
    assert _digest(path) == before, f"{command} changed its input {case}"
    errors = [ln for ln in err.splitlines() if ln.startswith(f"recall-lab {command}: error: ")]
    if rc >= 2:
        assert len(errors) == 1, err
    want = EXPECTED.get(case, {})
    rule = want.get(command, want.get("*"))
    if command == "simulate":  # pointed at an existing input: it must refuse to overwrite
        rule = (2, "folder" if case == "folder" else "already exists")
    if rule is not None:
        code, text = rule
        assert rc == code, (rc, err)
        if code >= 2:
            assert text in errors[0], errors[0]
    assert took < 30, f"{command} took {took:.0f} s on {case}"


def test_damaged_file_names_the_file_once(corpus, capsys):
    """The one line starts with the file, then says it is damaged (no HDF5 jargon first)."""
    for case in ("cut", "flipped"):
        rc, err = _in_process(["info", str(corpus[case])], capsys)
        (line,) = err.strip().splitlines()
        assert rc == 2
        assert line.startswith(f"recall-lab info: error: {corpus[case]}: damaged file ("), line


def test_exit_statuses_are_documented(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code, meaning in (
        ("0", "success"),
        ("1", "failure"),
        ("2", "bad input"),
        ("3", "disk full"),
    ):
        assert f"{code}  {meaning}" in text, text


# ----------------------------------------------------------------------------- decode outputs
def _valid_copy(corpus, tmp_path) -> Path:
    path = tmp_path / "s.h5"
    path.write_bytes(corpus["valid"].read_bytes())
    return path


def test_decode_checks_its_report_folder_before_any_work(corpus, tmp_path, capsys):
    """An unusable --report fails at once, before the session is decoded or written into."""
    path = _valid_copy(corpus, tmp_path)
    before = _digest(path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = corpus["valid"].parent.parent / "tiny.yaml"
    t0 = time.monotonic()
    rc, err = _in_process(
        ["decode", str(path), "--config", str(config), "--report", str(blocker / "rep")], capsys
    )
    assert rc == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert "report folder" in line and str(blocker) in line, line
    assert _digest(path) == before  # no run was written into the session
    assert time.monotonic() - t0 < 5


def _strict_json(text: str):
    import json

    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_decode_without_permutations_reports_chance_as_not_computed(corpus, tmp_path, capsys):
    path = _valid_copy(corpus, tmp_path)
    config = tmp_path / "noperm.yaml"
    config.write_text(TINY_DECODE.replace("n_permutations: 2", "n_permutations: 0"))
    argv = ["decode", str(path), "--config", str(config), "--report", str(tmp_path / "rep")]
    assert main([*argv, "--json", "--no-write"]) == 0
    summary = _strict_json(capsys.readouterr().out)
    m = summary["decoders"]["bandpower_logreg"]
    assert m["n_permutations"] == 0
    assert m["chance_f1_weighted"] is None and m["p_value"] is None
    for name in ("summary.json", "metrics.json"):
        (folder,) = (tmp_path / "rep").iterdir()
        _strict_json((folder / name).read_text())
    assert main([*argv, "--no-write"]) == 0
    text = capsys.readouterr().out
    assert "chance not computed" in text and "nan" not in text.lower(), text


# ----------------------------------------------------------------------------- absurd values
def _absurd_protocol(d: Path) -> Path:
    text = (REPO / "protocols" / "demo.yaml").read_text()
    out = d / "forever.yaml"
    out.write_text(text.replace("max_duration: 15", "max_duration: 1.0e309", 1))
    assert "1.0e309" in out.read_text()
    return out


ABSURD = {
    "record --duration inf": (
        lambda d, s: ["record", "--duration", "inf", "--out", str(d / "r.h5")],
        "--duration",
    ),
    "record --out x.txt": (
        lambda d, s: ["record", "--duration", "1", "--out", str(d / "x.txt")],
        ".h5",
    ),
    "record --out ''": (lambda d, s: ["record", "--duration", "1", "--out", ""], "--out"),
    "simulate --duration inf": (
        lambda d, s: ["simulate", "--duration", "inf", "--out", str(d / "s2.h5")],
        "--duration",
    ),
    "simulate --out x.txt": (lambda d, s: ["simulate", "--out", str(d / "x.txt")], ".h5"),
    "protocol duration 1e309": (
        lambda d, s: ["demo", "--protocol", str(_absurd_protocol(d)), "--out", str(d / "p.h5")],
        "max_duration",
    ),
    "decode l_freq above h_freq": (
        lambda d, s: ["decode", str(s), "--no-write", "--config", str(_band(d))],
        "l_freq",
    ),
    "decode --config folder": (lambda d, s: ["decode", str(s), "--config", str(d)], "folder"),
    "export --line-freq 55": (
        lambda d, s: [
            "export",
            str(s),
            "--format",
            "bids",
            "--out",
            str(d / "bids"),
            "--line-freq",
            "55",
        ],
        "--line-freq",
    ),
}


def _band(d: Path) -> Path:
    out = d / "band.yaml"
    out.write_text("preprocess: {l_freq: 40, h_freq: 10}\n")
    return out


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_value_gives_one_line(corpus, case, tmp_path, capsys):
    make, text = ABSURD[case]
    session = _valid_copy(corpus, tmp_path)
    before = _digest(session)
    t0 = time.monotonic()
    rc, err = _in_process(make(tmp_path, session), capsys)
    assert "Traceback" not in err, err
    assert rc == 2, (rc, err)
    (line,) = err.strip().splitlines()
    assert text in line, line
    assert time.monotonic() - t0 < 10
    assert _digest(session) == before
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".h5", ".txt") and p != session]


# ------------------------------------------------------------------ signals, partial files
def _start(argv: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _signal_at_creation(proc: subprocess.Popen, out: Path, sig: int) -> None:
    """Send ``sig`` the moment ``out`` appears (within a millisecond or so of its creation)."""
    deadline = time.monotonic() + 60
    while not out.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the file never appeared"
        time.sleep(0.0005)
    proc.send_signal(sig)


def _left_behind_is_usable(out: Path) -> None:
    """No file, or a session file that opens (never a junk file of a few hundred bytes)."""
    from data_schema.reader import read_session

    if out.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_session(out, load_data=False)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_record_stopped_as_the_file_is_created_leaves_no_junk(tmp_path, sig):
    import signal

    out = tmp_path / "r.h5"
    proc = _start(["record", "--duration", "30", "--out", str(out), "--quiet"])
    _signal_at_creation(proc, out, getattr(signal, sig))
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert proc.returncode in DOCUMENTED_EXITS | {130}, (proc.returncode, err)
    _left_behind_is_usable(out)


def test_demo_stops_on_sigterm(tmp_path):
    import signal

    out = tmp_path / "d.h5"
    proc = _start(["demo", "--out", str(out), "--no-offline", "--quiet"])
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.5)  # the protocol is running
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("demo kept running after SIGTERM")
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    _left_behind_is_usable(out)


EXPORT_ON_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # the disk is (nearly) full
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_export_to_a_full_disk_leaves_no_partial_file(corpus, tmp_path):
    out = tmp_path / "x.edf"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            EXPORT_ON_FULL_DISK,
            "export",
            str(corpus["valid"]),
            "--format",
            "edf",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (2, 3), (proc.returncode, proc.stderr)
    assert not out.exists(), f"a partial export of {out.stat().st_size} bytes was left"


# ----------------------------------------------------------------------------- messages
def test_one_crash_loss_promise_everywhere(corpus, capsys):
    """SPEC, README, `record --help` and the validator say the same thing about a crash."""
    from data_schema.validator import validate_session

    promise = "at most about half a second"
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    assert promise in " ".join(capsys.readouterr().out.split())
    unclosed = [p for p in validate_session(corpus["no_eeg"]) if "clean_close" in p.what]
    assert promise in str(unclosed[0])
    for doc in ("README.md", "data_schema/SPEC.md", "app/commands/record.py"):
        text = " ".join((REPO / doc).read_text().split())
        if doc.endswith(".md"):
            assert promise in text, doc
        for other in ("about one second", "0.40 s at most", "at most about a second"):
            assert other not in text, (doc, other)


def test_read_only_folder_is_said_in_words():
    """The writer names a read-only folder instead of quoting HDF5's error stack."""
    from data_schema.writer import SessionWriter, _create_failure

    w = SessionWriter.__new__(SessionWriter)
    w.path = Path("/data/locked/s.h5")
    raw = OSError(
        "[Errno 13] Unable to synchronously create file (unable to open file: name = "
        "'/data/locked/s.h5', errno = 13, error message = 'Permission denied', flags = 15, "
        "o_flags = c2)"
    )
    msg = _create_failure(w, raw)
    assert msg == "the folder /data/locked is read-only (Permission denied)"


def test_hdf5_errors_no_reader_caught_still_name_the_file(corpus, capsys, monkeypatch):
    """The command line's last line of defence: an h5py error becomes `<file>: damaged file`."""
    import h5py

    import app.commands.validate as validate_cmd

    def reads_raw_hdf5(args):
        with h5py.File(args.file, "r") as f:
            return len(f["streams"])  # the damaged index: RuntimeError from h5py

    monkeypatch.setattr(validate_cmd, "run", reads_raw_hdf5)
    rc, err = _in_process(["validate", str(corpus["flipped"])], capsys)
    assert rc == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"recall-lab validate: error: {corpus['flipped']}: damaged file ("), line
