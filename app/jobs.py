"""Offline stages (decode, generate) as cancellable background jobs.

Each job is a separate ``recall-lab <stage> ...`` process (QProcess), so nothing it does (a
crash, a memory spike, a hung model) can touch a recording in progress; the console stays
responsive and can cancel it. The console runs the stages with ``--progress json``: their
``@progress`` lines (:mod:`data_schema.progress`) give the planned steps, each step's count of
fitted folds, denoising steps or frames, the folder being written and the finished output
folders. For other commands, a percentage (``42%``) or a fraction (``3/10``) on a line is read
as progress. Cancel sends SIGTERM (the stages stop at once and remove what they began) and,
should a job not end within :attr:`OfflineJob.grace_ms`, kills it and removes its unfinished
folder itself.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

from PyQt6 import QtCore

from data_schema.progress import PREFIX, remove_partial

_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")
_FRACTION = re.compile(r"\b(\d+)\s*/\s*(\d+)\b")
_PATH = re.compile(r"(/[^\s'\"]+|[A-Za-z]:\\[^\s'\"]+|[\w.\-/]+\.(?:png|mp4|gif|wav|json|pdf|h5))")
RESULT_SUFFIXES = (".png", ".svg", ".pdf", ".mp4", ".gif", ".webm", ".wav", ".html", ".json")


def stage_available(stage: str) -> bool:
    """Whether ``recall-lab <stage>`` exists in this installation."""
    return importlib.util.find_spec(f"app.commands.{stage}") is not None


def parse_progress(line: str) -> float | None:
    """Progress in 0..1 from one line of output, or ``None`` if it says nothing about it."""
    m = _PERCENT.findall(line)
    if m:
        return min(1.0, float(m[-1]) / 100.0)
    m = _FRACTION.findall(line)
    if m:
        done, total = (int(x) for x in m[-1])
        if 0 < total and done <= total:
            return done / total
    return None


def result_paths(text: str, cwd: Path) -> list[Path]:
    """Existing result files (plots, videos, ...) named in ``text``."""
    found: list[Path] = []
    for token in _PATH.findall(text):
        p = Path(token.rstrip(".,:;)"))
        if not p.is_absolute():
            p = cwd / p
        if p.suffix.lower() in RESULT_SUFFIXES and p.is_file() and p not in found:
            found.append(p)
    return found


def folder_files(folder: Path) -> list[Path]:
    """Every file in an output folder, in name order (the job's complete results)."""
    try:
        return sorted(p for p in folder.rglob("*") if p.is_file())
    except OSError:
        return []


def relative_name(path: Path, base: Path) -> str:
    """``path`` as a person finds it from ``base`` (the recording's folder)."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


class OfflineJob(QtCore.QObject):
    """``recall-lab <args>`` in its own process.

    Signals
    -------
    progress(float)
        0..1, when the output says.
    output(str)
        Each line the job prints (stdout and stderr).
    finished(int, list)
        Exit code (``-1`` if cancelled or it crashed) and the result files found.
    """

    progress = QtCore.pyqtSignal(float)
    output = QtCore.pyqtSignal(str)
    finished = QtCore.pyqtSignal(int, list)
    #: A step's count: (index, number of steps, name, done, total, unit).
    step = QtCore.pyqtSignal(int, int, str, int, int, str)

    #: Milliseconds a cancelled job has to stop before it is killed.
    grace_ms = 20000

    def __init__(
        self,
        args: list[str],
        *,
        cwd: str | Path | None = None,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.args = list(args)
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.text: list[str] = []
        self.cancelled = False
        self.started_at = 0.0
        self.steps: list[str] = []
        self.workdirs: list[Path] = []
        self.folders: list[Path] = []
        self._partial = ""
        self.process = QtCore.QProcess(self)
        self.process.setProcessChannelMode(QtCore.QProcess.ProcessChannelMode.MergedChannels)
        self.process.setWorkingDirectory(str(self.cwd))
        env = QtCore.QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")  # progress lines as they happen
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)

    def start(self) -> None:
        import time

        self.started_at = time.time()
        self.process.start(sys.executable, ["-m", "app.cli", *self.args])

    @property
    def running(self) -> bool:
        return self.process.state() != QtCore.QProcess.ProcessState.NotRunning

    def cancel(self, grace_ms: int | None = None) -> None:
        """Ask the job to stop (SIGTERM), and kill it if it has not after ``grace_ms``."""
        if not self.running:
            return
        self.cancelled = True
        self.process.terminate()
        QtCore.QTimer.singleShot(
            self.grace_ms if grace_ms is None else grace_ms, self._kill_if_running
        )

    def _kill_if_running(self) -> None:
        if self.running:
            self.process.kill()

    def wait(self, ms: int = 30000) -> bool:
        """Block until the process ends (tests and shutdown only)."""
        return self.process.waitForFinished(ms)

    def _read(self) -> None:
        chunk = bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        # tqdm rewrites its line with "\r"; treat it as a line end.
        text = self._partial + chunk.replace("\r", "\n")
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        if line.startswith(PREFIX):
            self._event(line[len(PREFIX) :])
            return
        self.text.append(line)
        self.output.emit(line)
        if self.steps:
            return  # the job reports its steps: free text is no progress
        p = parse_progress(line)
        if p is not None:
            self.progress.emit(p)

    def _event(self, text: str) -> None:
        try:
            ev = json.loads(text)
            kind = ev["event"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "plan":
            self.steps = [str(s) for s in ev.get("steps", [])]
        elif kind == "step":
            n = max(len(self.steps), 1)
            i, done, total = int(ev["index"]), int(ev["done"]), int(ev["total"])
            self.step.emit(i, n, str(ev["name"]), done, total, str(ev.get("unit", "")))
            frac = done / total if total > 0 else 0.0
            self.progress.emit(min(1.0, (i + frac) / n))
        elif kind == "workdir":
            self.workdirs.append(Path(ev["path"]))
        elif kind == "folder":
            self.folders.append(Path(ev["path"]))

    def _finished(self, code: int, status: QtCore.QProcess.ExitStatus) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        crashed = status == QtCore.QProcess.ExitStatus.CrashExit
        rc = -1 if (crashed or self.cancelled) else int(code)
        if rc != 0:
            # A job that was killed could not clean up: the folder it began goes now (and
            # its parent, if nothing else is in it). A folder it had finished is complete.
            for d in self.workdirs:
                if d.exists():
                    remove_partial(d, d.parent)
            results = []
        elif self.folders:
            results = [p for d in self.folders for p in folder_files(d)]
        else:
            results = result_paths("\n".join(self.text), self.cwd)
        self.finished.emit(rc, results)

    def _error(self, error: QtCore.QProcess.ProcessError) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart:
            self.text.append(f"could not start {sys.executable}")
            self.finished.emit(-1, [])
