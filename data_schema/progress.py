"""Progress, cancellation and all-or-nothing output folders for long offline jobs.

``recall-lab decode`` and ``recall-lab generate`` run for minutes. Their work is split into
named *steps* declared up front (preprocessing, one per decoder, writing; or keyframes, music,
video per memory), each counting real units of work (a fitted fold or permutation, a diffusion
step, a codec frame). A :class:`Progress` shows them as tqdm bars on a terminal, or, for the
console (``--progress json``), as one machine-readable line per update::

    @progress {"event": "plan", "steps": ["read", "bandpower_logreg", "write"]}
    @progress {"event": "step", "index": 1, "name": "bandpower_logreg", "done": 12,
               "total": 40, "unit": "fit"}
    @progress {"event": "workdir", "path": "/abs/s.h5.decoding/.run-partial-4711"}
    @progress {"event": "folder", "path": "/abs/s.h5.decoding/run-003"}

Cancelling (SIGTERM, as the console's Cancel sends, or Ctrl+C) stops the work at once with
:class:`~data_schema.errors.Cancelled`, except inside :meth:`Progress.committing`, where the
results are being written: there the cancel waits until the block ends, so a session file never
holds half a run. Output folders are made by :func:`run_folder`: everything is written into a
hidden ``.run-partial-<pid>`` folder that becomes ``run-NNN`` only when complete and is removed
otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from data_schema.errors import Cancelled

#: Lines for the console start with this.
PREFIX = "@progress "
#: Progress modes: terminal bars, machine-readable lines, or nothing.
MODES = ("bars", "json", "none")
PARTIAL_PREFIX = ".run-partial-"
_RUN_RE = re.compile(r"run-(\d+)$")


class Step:
    """One step's counter; ``update(n)`` as tqdm's (music generation takes either)."""

    def __init__(self, progress: Progress, index: int, name: str, total: int, unit: str):
        self.progress = progress
        self.index = index
        self.name = name
        self.total = max(int(total), 0)
        self.unit = unit
        self.done = 0
        self._bar = None
        if progress.mode == "bars":
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, desc=name, unit=unit, file=progress.stream, leave=False
            )
        progress._report(self, force=True)

    def update(self, n: int = 1) -> None:
        self.progress.check()
        self.done = min(self.done + int(n), self.total) if self.total else self.done + int(n)
        if self._bar is not None:
            self._bar.update(n)
        self.progress._report(self, force=self.done >= self.total)

    def resize(self, total: int) -> None:
        """Correct the total once it is known exactly (e.g. a pipeline's own step count)."""
        self.total = max(int(total), self.done)
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()
        self.progress._report(self, force=True)

    def tick(self) -> None:
        """One unit done (the form the decoders' evaluation calls)."""
        self.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Step:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Steps and their counts, shown as ``mode`` says; also the job's cancel switch.

    Parameters
    ----------
    mode
        ``bars`` (tqdm on ``stream``, stderr by default), ``json`` (``@progress`` lines on
        ``stream``, stdout by default) or ``none``.
    min_interval
        Least seconds between two lines of the same step (its first and last always go out).
    """

    def __init__(
        self, mode: str = "none", stream: IO[str] | None = None, *, min_interval: float = 0.1
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self.min_interval = min_interval
        self.cancel = threading.Event()
        self.steps: list[str] = []
        self._last = 0.0
        self._committing = 0

    @classmethod
    def of(cls, value: Progress | bool | str | None) -> Progress:
        """A Progress from what callers pass: one, ``True`` (bars), a mode, or nothing."""
        if isinstance(value, Progress):
            return value
        if value is True:
            return cls("bars")
        if isinstance(value, str):
            return cls(value)
        return cls("none")

    # ------------------------------------------------------------------ steps
    def plan(self, names: Sequence[str]) -> None:
        """Declare the steps, in order, before the first starts."""
        self.steps = list(names)
        self._emit({"event": "plan", "steps": self.steps})

    def step(self, name: str, total: int, unit: str = "it") -> Step:
        """Start step ``name`` (added to the plan if it was not in it) with ``total`` units."""
        self.check()
        if name not in self.steps:
            self.steps.append(name)
            self._emit({"event": "plan", "steps": self.steps})
        return Step(self, self.steps.index(name), name, total, unit)

    def ticker(self, name: str, total: int, unit: str = "fit"):
        """``step(...).tick``: the one-call counter the decoders' evaluation takes."""
        return self.step(name, total, unit).tick

    def announce(self, event: str, path: str | Path) -> None:
        """Tell the console about a folder or file: ``workdir`` (being written, remove it if
        the job dies), ``folder`` (a finished output folder) or ``output`` (a finished file)."""
        self._emit({"event": event, "path": str(Path(path).resolve())})

    def _report(self, step: Step, *, force: bool) -> None:
        if self.mode != "json":
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        self._emit(
            {
                "event": "step",
                "index": step.index,
                "name": step.name,
                "done": step.done,
                "total": step.total,
                "unit": step.unit,
            }
        )

    def _emit(self, obj: dict[str, Any]) -> None:
        if self.mode != "json":
            return
        try:
            self.stream.write(PREFIX + json.dumps(obj) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # nobody listening any more: the work goes on

    # ------------------------------------------------------------------ cancelling
    def check(self) -> None:
        """Raise :class:`Cancelled` if a cancel came (outside :meth:`committing`)."""
        if self.cancel.is_set() and not self._committing:
            raise Cancelled("cancelled: nothing of this run was kept")

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[Progress]:
        """SIGTERM (and Ctrl+C) cancel the work for the duration of the block.

        The signal sets :attr:`cancel`; outside :meth:`committing` it also stops the work at
        once with :class:`Cancelled`. Only the main thread can take signals; elsewhere the
        block only offers :attr:`cancel` and :meth:`check`.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def on_signal(signum: int, frame: Any) -> None:
            self.cancel.set()
            self.check()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """Results are being written: a cancel now waits until they are complete (and the
        run then ends normally: what was asked for was finished before it could stop)."""
        self.check()
        self._committing += 1
        try:
            yield
        finally:
            self._committing -= 1


class RunFolder:
    """Where :func:`run_folder` lets a job write; ``final`` is set once it is complete."""

    def __init__(self, partial: Path, root: Path, progress: Progress | None) -> None:
        self.partial = partial
        self.root = root
        self.progress = progress
        self.final: Path | None = None

    @property
    def path(self) -> Path:
        return self.final or self.partial

    def publish(self) -> Path:
        """Rename the complete folder to the next free ``run-NNN`` (done at the end of the
        block if not before); an error later in the block still removes it."""
        if self.final is None:
            self.final = _publish(self.partial, self.root)
            if self.progress is not None:
                self.progress.announce("folder", self.final)
        return self.final


@contextlib.contextmanager
def run_folder(root: str | Path, progress: Progress | None = None) -> Iterator[RunFolder]:
    """A new ``root/run-NNN`` that exists only complete.

    The block writes into ``root/.run-partial-<pid>``; when it ends normally that folder is
    renamed to the next free ``run-NNN`` (never an existing one). When it raises, the partial
    folder is removed, and ``root`` too if this call made it and nothing else is in it.
    """
    root = Path(root)
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{PARTIAL_PREFIX}{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)  # left by a killed run of this same process id
    partial.mkdir()
    folder = RunFolder(partial, root, progress)
    if progress is not None:
        progress.announce("workdir", partial)
    try:
        yield folder
        folder.publish()
    except BaseException:
        remove_partial(folder.path, root if made_root else None)
        raise


def published_runs(root: str | Path) -> list[Path]:
    """The complete ``root/run-NNN`` folders (never a partial one), oldest first by number."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def latest_run_summary(root: str | Path) -> tuple[str, dict] | None:
    """The newest ``root/run-NNN`` that holds a readable ``summary.json``: its name and the
    summary, or ``None``."""
    for run in reversed(published_runs(root)):
        try:
            return run.name, json.loads((run / "summary.json").read_text())
        except (OSError, ValueError):
            continue
    return None


def _publish(partial: Path, root: Path) -> Path:
    nums = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
    n = max(nums, default=0) + 1
    while True:
        final = root / f"run-{n:03d}"
        if not final.exists():
            try:
                os.rename(partial, final)
                return final
            except OSError:
                pass
        n += 1


def remove_partial(partial: str | Path, root: str | Path | None = None) -> None:
    """Remove a job's unfinished folder, and ``root`` if it is left empty."""
    shutil.rmtree(partial, ignore_errors=True)
    if root is not None:
        with contextlib.suppress(OSError):
            Path(root).rmdir()  # only succeeds when empty
