"""After the session: run the offline stages as background jobs and open their results."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from app.jobs import OfflineJob, stage_available, stage_outputs

#: The offline stages in the order they make sense: decode first, then generate from it.
STAGES = (("decode", "Decode affect"), ("generate", "Generate media"))


class JobsPanel(QtWidgets.QGroupBox):
    """One button per offline stage, a progress bar, Cancel, and the results list."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Offline stages", parent)
        self.recording: Path | None = None
        self.job: OfflineJob | None = None
        self.buttons: dict[str, QtWidgets.QPushButton] = {}
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
        self.bar.setRange(0, 1000)
        self.line = QtWidgets.QLabel("Record a session first.")
        self.line.setWordWrap(True)
        self.results = QtWidgets.QListWidget()
        self.results.setMaximumHeight(90)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.bar)
        lay.addWidget(self.line)
        lay.addWidget(self.results)
        self.cancel_button.clicked.connect(self.cancel_all)
        self.results.itemActivated.connect(self._open)
        self._update()

    def set_recording(self, path: Path | None) -> None:
        self.recording = path
        self.line.setText(f"ready: {path.name}" if path else "Record a session first.")
        self._update()

    def _update(self) -> None:
        busy = self.job is not None and self.job.running
        for stage, b in self.buttons.items():
            ok = stage_available(stage)
            b.setEnabled(ok and self.recording is not None and not busy)
            b.setToolTip("" if ok else f"recall-lab {stage} is not installed")
        self.cancel_button.setEnabled(busy)

    def run_stage(self, stage: str, extra: list[str] | None = None) -> OfflineJob | None:
        """Start ``recall-lab <stage> <recording> [extra]`` as a background job."""
        if self.recording is None or (self.job is not None and self.job.running):
            return None
        return self.run_args([stage, str(self.recording), *(extra or [])])

    def run_args(self, args: list[str]) -> OfflineJob:
        self.job = OfflineJob(args, cwd=(self.recording or Path.cwd()).parent, parent=self)
        self.job.progress.connect(lambda p: self.bar.setValue(int(p * 1000)))
        self.job.output.connect(lambda line: self.line.setText(line[-200:]))
        self.job.finished.connect(self._finished)
        self.bar.setValue(0)
        self.line.setText(f"running recall-lab {' '.join(args[:1])}…")
        self.job.start()
        self._update()
        return self.job

    def _finished(self, code: int, results: list) -> None:
        job = self.job
        if code == 0 and job is not None and self.recording is not None:
            results = list(results) + [
                p for p in stage_outputs(self.recording, job.started_at - 1) if p not in results
            ]
        if code == 0:
            self.bar.setValue(1000)
            self.line.setText(f"recall-lab {job.args[0]} finished: {len(results)} result file(s)")
        elif job is not None and job.cancelled:
            self.line.setText(f"recall-lab {job.args[0]} cancelled")
        else:
            last = job.text[-1] if job is not None and job.text else "no output"
            self.line.setText(f"recall-lab {job.args[0] if job else ''} failed: {last}")
        for p in results:
            item = QtWidgets.QListWidgetItem(str(p))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, str(p))
            self.results.addItem(item)
        self._update()

    def _open(self, item: QtWidgets.QListWidgetItem) -> None:
        path = item.data(QtCore.Qt.ItemDataRole.UserRole)
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(path))

    def cancel_all(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.job.wait(5000)
        self._update()
