"""After the session: open a session, run the offline stages as background jobs, see results.

The panel works on one session file: the one just recorded, or one opened with *Open
session…*. *Decode affect* and *Generate media* run ``recall-lab decode|generate`` in their own
process with ``--progress json``; two bars show which step of how many is running and how far
that step is (fitted folds and permutations, denoising steps, frames). Cancel stops the job and
nothing half-made is kept. The results list names every file of the finished output folders
relative to the session's folder; a double-click opens it in the console (pictures, videos with
their affect timeline, text), and *Valence plot* draws decoded against reported valence.

*Open study…* picks a study folder (``recall-lab study init``); *Decode study* and *Generate
study* run ``recall-lab study decode|generate`` on it with the same settings, their tasks on
Dask as the command line runs them; the bars count participants (or fits, across participants)
and memories, Cancel cancels every task, and the results are listed relative to the study.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.jobs import OfflineJob, folder_files, relative_name, stage_available
from app.settings import AppSettings
from app.widgets.background import in_background
from app.widgets.offline_settings import OfflineSettings

#: The offline stages in the order they make sense: decode first, then generate from it.
STAGES = (("decode", "Decode affect"), ("generate", "Generate media"))
#: The same for a whole study (``recall-lab study ACTION``).
STUDY_STAGES = (("decode", "Decode study"), ("generate", "Generate study"))
PATH_ROLE = QtCore.Qt.ItemDataRole.UserRole


def existing_results(session: Path) -> dict:
    """What earlier runs left for ``session``: whether it has a decoding run, and the files of
    its report and generation folders (read off the GUI thread)."""
    from data_schema.derived import list_derived_runs
    from data_schema.reader import open_session_file

    decoded = bool(list_derived_runs(session, "decoding"))
    folders: list[Path] = []
    with open_session_file(session) as f:
        gen = f.get("derived/generation")
        for name in sorted(gen or []):
            out = gen[name].attrs.get("output_folder")
            if out and Path(str(out)).is_dir():
                folders.append(Path(str(out)))
    reports = Path(f"{session}.decoding")
    if reports.is_dir():
        folders += sorted(p for p in reports.glob("run-*") if p.is_dir())
    return {"decoded": decoded, "files": [p for d in folders for p in folder_files(d)]}


class JobsPanel(QtWidgets.QGroupBox):
    """Open session, models folder, one button per stage, progress, Cancel and the results."""

    def __init__(
        self, settings: AppSettings | None = None, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__("Offline stages", parent)
        self.settings = settings
        self.recording: Path | None = None
        self.job: OfflineJob | None = None
        self.windows: list[QtWidgets.QWidget] = []
        self.decoded = False
        self.buttons: dict[str, QtWidgets.QPushButton] = {}
        self.study: Path | None = None
        self.results_base: Path | None = None

        self.open_button = QtWidgets.QPushButton("Open session…")
        self.session_label = QtWidgets.QLabel("no session")
        self.session_label.setAccessibleName("Offline session")
        self.offline = OfflineSettings(settings)
        self.study_button = QtWidgets.QPushButton("Open study…")
        self.study_label = QtWidgets.QLabel("no study")
        self.study_label.setAccessibleName("Offline study")
        self.study_buttons: dict[str, QtWidgets.QPushButton] = {}
        self.study_label.setWordWrap(True)
        study_top = QtWidgets.QHBoxLayout()
        study_top.addWidget(self.study_button)
        study_top.addWidget(self.study_label, 1)
        study_row = QtWidgets.QHBoxLayout()
        for action, label in STUDY_STAGES:
            b = QtWidgets.QPushButton(label)
            b.clicked.connect(lambda _=False, a=action: self.run_study(a))
            b.setSizePolicy(
                QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed
            )
            self.study_buttons[action] = b
            study_row.addWidget(b)
        row = QtWidgets.QHBoxLayout()
        for stage, label in STAGES:
            b = QtWidgets.QPushButton(label)
            b.clicked.connect(lambda _=False, s=stage: self.run_stage(s))
            self.buttons[stage] = b
            row.addWidget(b)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        row.addWidget(self.cancel_button)
        for b in (*self.buttons.values(), self.cancel_button):
            b.setSizePolicy(
                QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed
            )
        self.bar = QtWidgets.QProgressBar()
        self.bar.setAccessibleName("Offline progress")
        self.bar.setRange(0, 1000)
        self.step_label = QtWidgets.QLabel("")
        self.step_label.setAccessibleName("Offline step")
        self.step_bar = QtWidgets.QProgressBar()
        self.step_bar.setAccessibleName("Step progress")
        self.step_bar.setRange(0, 1)
        self.step_bar.setFormat("%v / %m")
        self.line = QtWidgets.QLabel("Record or open a session first.")
        self.line.setAccessibleName("Offline status")
        self.line.setWordWrap(True)
        self.results = QtWidgets.QListWidget()
        self.results.setAccessibleName("Results")
        self.results.setMinimumHeight(110)
        self.plot_button = QtWidgets.QPushButton("Valence plot")

        lay = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.session_label, 1)
        lay.addLayout(top)
        lay.addWidget(self.offline)
        lay.addLayout(row)
        lay.addLayout(study_top)
        lay.addLayout(study_row)
        lay.addWidget(self.bar)
        lay.addWidget(self.step_label)
        lay.addWidget(self.step_bar)
        lay.addWidget(self.line)
        lay.addWidget(self.results)
        lay.addWidget(self.plot_button)

        self.open_button.clicked.connect(self.choose_session)
        self.study_button.clicked.connect(self.choose_study)
        self.cancel_button.clicked.connect(self.cancel_all)
        self.results.itemActivated.connect(self._open)
        self.plot_button.clicked.connect(self.show_valence_plot)
        self._update()

    # ------------------------------------------------------------------ session
    def set_recording(self, path: Path | None) -> None:
        """Work on ``path`` from now on; its earlier results are listed once read."""
        self.recording = path
        self.results_base = None
        self.decoded = False
        self.results.clear()
        self.session_label.setText(path.name if path else "no session")
        self.line.setText(f"ready: {path.name}" if path else "Record or open a session first.")
        self._update()
        if path is not None:
            in_background(lambda: existing_results(path), self._existing, self)

    def _existing(self, found: dict | None, error: BaseException | None) -> None:
        if error is not None or found is None or self.recording is None:
            if error is not None:
                self.line.setText(f"cannot read {self.recording}: {error}")
            return
        self.decoded = self.decoded or found["decoded"]
        self._add_results(found["files"])
        self._update()

    def choose_session(self) -> None:
        start = str(self.recording.parent) if self.recording else ""
        if not start and self.settings is not None:
            start = self.settings.get("session/out_dir")
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open session", start, "Session files (*.h5);;All files (*)"
        )
        if path:
            self.set_recording(Path(path))

    # ------------------------------------------------------------------ study
    def choose_study(self) -> None:
        start = str(self.study.parent) if self.study else ""
        if not start and self.settings is not None:
            start = self.settings.get("session/out_dir")
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open study", start)
        if path:
            from data_schema.study import Study

            root = Path(path)
            in_background(
                lambda: Study.open(root), lambda st, err: self._study(root, st, err), self
            )

    def _study(self, root: Path, study, error: BaseException | None) -> None:
        if error is not None or study is None:
            self.line.setText(str(error).splitlines()[0] if error else f"{root}: not a study")
            return
        self.study = root
        self.study_label.setText(study.name)
        self.study_label.setToolTip(str(root))
        self.line.setText(f"study ready: {study.name}")
        self._update()

    def run_study(self, action: str) -> OfflineJob | None:
        """Start ``recall-lab study <action> <study>`` as a background job."""
        if self.study is None or (self.job is not None and self.job.running):
            return None
        args = ["study", action, str(self.study), "--progress", "json"]
        if action == "generate" and self.offline.models_dir:
            args += ["--models", self.offline.models_dir]
        if action == "decode" and self.offline.decode_config:
            args += ["--config", self.offline.decode_config]
        return self.run_args(args, base=self.study)

    # ------------------------------------------------------------------ jobs
    def _update(self) -> None:
        busy = self.job is not None and self.job.running
        for stage, b in self.buttons.items():
            ok = stage_available(stage)
            b.setEnabled(ok and self.recording is not None and not busy)
            b.setToolTip("" if ok else f"recall-lab {stage} is not installed")
        for b in self.study_buttons.values():
            b.setEnabled(self.study is not None and not busy)
        self.study_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.open_button.setEnabled(not busy)
        self.plot_button.setEnabled(self.decoded and self.recording is not None)

    def run_stage(self, stage: str, extra: list[str] | None = None) -> OfflineJob | None:
        """Start ``recall-lab <stage> <recording> [extra]`` as a background job."""
        if self.recording is None or (self.job is not None and self.job.running):
            return None
        args = [stage, str(self.recording), "--progress", "json"]
        if stage == "generate" and self.offline.models_dir:
            args += ["--models", self.offline.models_dir]
        if stage == "decode" and self.offline.decode_config:
            args += ["--config", self.offline.decode_config]
        return self.run_args([*args, *(extra or [])])

    def run_args(self, args: list[str], base: Path | None = None) -> OfflineJob:
        """Run ``recall-lab <args>``; results are listed relative to ``base`` (default: the
        session's folder)."""
        self.results_base = base
        cwd = base if base is not None else (self.recording or Path.cwd()).parent
        self.job = OfflineJob(args, cwd=cwd, parent=self)
        self.job.progress.connect(lambda p: self.bar.setValue(int(p * 1000)))
        self.job.step.connect(self._step)
        self.job.output.connect(lambda line: self.line.setText(line[-200:]))
        self.job.finished.connect(self._finished)
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.step_bar.setRange(0, 1)
        self.step_bar.setValue(0)
        self.step_label.setText("starting…")
        self.line.setText(f"running recall-lab {args[0]}…")
        self.job.start()
        self._update()
        return self.job

    def _step(self, index: int, n: int, name: str, done: int, total: int, unit: str) -> None:
        self.bar.setFormat(f"%p% · step {index + 1} of {n}")
        self.step_label.setText(f"{name}: {done} of {total} {unit}{'s' if total != 1 else ''}")
        self.step_bar.setRange(0, max(total, 1))
        self.step_bar.setValue(min(done, max(total, 1)))

    def _finished(self, code: int, results: list) -> None:
        job = self.job
        stage = " ".join(job.args[:2] if job.args[0] == "study" else job.args[:1]) if job else ""
        if code == 0:
            self.bar.setValue(1000)
            self.bar.setFormat("%p% · done")
            self.step_label.setText("")
            self.line.setText(f"recall-lab {stage} finished: {len(results)} result file(s)")
            if stage == "decode":
                self.decoded = True
            self._add_results(results, first=True)
        else:
            self.bar.setValue(0)
            self.bar.setFormat("%p%")
            self.step_bar.setRange(0, 1)
            self.step_bar.setValue(0)
            self.step_label.setText("")
            if job is not None and job.cancelled:
                self.line.setText(f"recall-lab {stage} cancelled: nothing of it was kept")
            else:
                last = job.text[-1] if job is not None and job.text else "no output"
                self.line.setText(f"recall-lab {stage} failed: {last}")
        self._update()

    def _add_results(self, paths: list, *, first: bool = False) -> None:
        """List ``paths`` by their name relative to the session's folder (newest first)."""
        base = self.results_base or (self.recording.parent if self.recording else Path.cwd())
        known = {self.results.item(i).data(PATH_ROLE) for i in range(self.results.count())}
        new = [Path(p) for p in paths if str(p) not in known]
        for k, p in enumerate(new):
            item = QtWidgets.QListWidgetItem(relative_name(p, base))
            item.setData(PATH_ROLE, str(p))
            item.setToolTip(str(p))
            if first:
                self.results.insertItem(k, item)
            else:
                self.results.addItem(item)

    def _open(self, item: QtWidgets.QListWidgetItem) -> None:
        from app.widgets.results_view import open_result

        window = open_result(
            Path(item.data(PATH_ROLE)), item.text(), self.window(), session=self.recording
        )
        if window is not None:
            self._keep(window)

    def show_valence_plot(self) -> QtWidgets.QWidget | None:
        if self.recording is None:
            return None
        from app.widgets.valence_plot import ValencePlot

        window = ValencePlot(self.recording, self.window())
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        window.show()
        self._keep(window)
        return window

    def _keep(self, window: QtWidgets.QWidget) -> None:
        self.windows = [w for w in self.windows if _alive(w)] + [window]

    def cancel_all(self) -> None:
        """Cancel the running job; the console waits for it only when it closes."""
        if self.job is not None and self.job.running:
            self.line.setText(f"cancelling recall-lab {self.job.args[0]}…")
            self.job.cancel()
        self._update()

    def shutdown(self) -> None:
        """The console closes: cancel the job and wait until it has cleaned up (a job left
        running would go on without anyone to see it), and close the result windows."""
        job = self.job
        if job is not None and job.running:
            job.cancel()
            if not job.wait(job.grace_ms):
                job.process.kill()
                job.wait(5000)
        for w in self.windows:
            if _alive(w):
                w.close()
        self.windows = []


def _alive(w: QtWidgets.QWidget) -> bool:
    try:
        w.isVisible()
    except RuntimeError:  # deleted on close
        return False
    return True
