"""Participant pseudonym, notes, protocol choice, recording and protocol controls, status."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from app.settings import AppSettings

#: The experimenter's marker hotkey (in the console window).
MARKER_KEY = "Ctrl+M"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


class SessionPanel(QtWidgets.QGroupBox):
    """The experimenter's session controls.

    Signals
    -------
    record_requested, stop_requested
        Start or stop the recording (the file).
    protocol_start, protocol_pause, protocol_skip, protocol_abort
        Protocol control; ``protocol_abort`` is emitted only after the experimenter confirmed.
    """

    record_requested = QtCore.pyqtSignal()
    stop_requested = QtCore.pyqtSignal()
    protocol_start = QtCore.pyqtSignal()
    protocol_pause = QtCore.pyqtSignal(bool)
    protocol_skip = QtCore.pyqtSignal()
    protocol_abort = QtCore.pyqtSignal()
    #: A note written during the recording: text, LSL time its typing began, time it was added.
    note_added = QtCore.pyqtSignal(str, float, float)
    #: The Marker button: LSL time of the click.
    marker_requested = QtCore.pyqtSignal(float)

    def __init__(self, settings: AppSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Session", parent)
        self.settings = settings
        # Never pre-filled from the last session: each session's pseudonym is typed (or given
        # with `recall-lab app --participant`), so one participant's code is not reused by habit.
        self.participant = QtWidgets.QLineEdit()
        self.participant.setPlaceholderText("pseudonym code, e.g. P001 (never a name)")
        self.participant.setMaxLength(64)
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("session notes (no names), stored when recording starts")
        self.notes.setMaximumHeight(60)
        # During the recording, notes are timestamped events: one line each, Enter adds it.
        self.note = QtWidgets.QLineEdit()
        self.note.setPlaceholderText("note during the recording, Enter adds it with its time")
        self.note_button = QtWidgets.QPushButton("Add note")
        self.marker_button = QtWidgets.QPushButton("Marker")
        self._note_started: float | None = None
        self.out_dir = QtWidgets.QLineEdit(settings.get("session/out_dir"))
        self.browse = QtWidgets.QPushButton("…")
        self.browse.setMaximumWidth(32)
        self.protocol = QtWidgets.QComboBox()
        self.protocol.setEditable(True)
        self.protocol_browse = QtWidgets.QPushButton("…")
        self.protocol_browse.setMaximumWidth(32)
        self.time_scale = QtWidgets.QDoubleSpinBox()
        self.time_scale.setRange(0.01, 10.0)
        self.time_scale.setDecimals(2)
        self.time_scale.setValue(settings.get("session/time_scale"))
        self.time_scale.setSuffix(" × durations")
        # For a protocol with a preference phase: the participant's session whose generate run
        # made the reconstructions to judge. Like the pseudonym, never kept between runs.
        self.reconstructions = QtWidgets.QLineEdit()
        self.reconstructions.setPlaceholderText("session file with reconstructions (preference)")
        self.reconstructions.setAccessibleName("Reconstructions")
        self.reconstructions_browse = QtWidgets.QPushButton("…")
        self.reconstructions_browse.setMaximumWidth(32)
        self.reconstructions_browse.setAccessibleName("Browse reconstructions")
        self.reconstructions_browse.clicked.connect(self._browse_reconstructions)

        self.pause_on_stall = QtWidgets.QCheckBox("Pause the protocol when the signal stalls")
        self.pause_on_stall.setChecked(bool(settings.get("session/pause_on_stall")))
        self.beep_on_stall = QtWidgets.QCheckBox("Beep when the signal stalls")
        self.beep_on_stall.setChecked(bool(settings.get("session/beep_on_stall")))
        for box, key in (
            (self.pause_on_stall, "session/pause_on_stall"),
            (self.beep_on_stall, "session/beep_on_stall"),
        ):
            box.setAccessibleName(box.text())
            box.toggled.connect(lambda on, key=key: settings.set(key, bool(on)))
        self.record_button = QtWidgets.QPushButton("● Record")
        self.stop_button = QtWidgets.QPushButton("■ Stop")
        self.start_button = QtWidgets.QPushButton("▶ Start protocol")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.skip_button = QtWidgets.QPushButton("Skip phase")
        self.abort_button = QtWidgets.QPushButton("Abort…")
        for button, name in (
            (self.record_button, "Record"),
            (self.stop_button, "Stop"),
            (self.start_button, "Start protocol"),
            (self.pause_button, "Pause"),
            (self.skip_button, "Skip phase"),
            (self.abort_button, "Abort"),
            (self.note_button, "Add note"),
            (self.marker_button, "Marker"),
        ):
            button.setAccessibleName(name)  # what assistive tools and scripted checks find
        self.participant.setAccessibleName("Participant pseudonym")
        self.notes.setAccessibleName("Session notes")
        self.note.setAccessibleName("Note")
        self.phase = QtWidgets.QLabel("–")
        self.file = QtWidgets.QLabel("not recording")
        self.file.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file.setWordWrap(True)
        self.progress = QtWidgets.QLabel("–")
        self.phase.setAccessibleName("Phase")
        self.progress.setAccessibleName("Recording status")

        form = QtWidgets.QFormLayout(self)
        form.addRow("Participant", self.participant)
        form.addRow("Notes", self.notes)
        form.addRow("Note", _row(self.note, self.note_button, self.marker_button))
        form.addRow("Folder", _row(self.out_dir, self.browse))
        form.addRow("Protocol", _row(self.protocol, self.protocol_browse))
        form.addRow("Time scale", self.time_scale)
        form.addRow("Reconstructions", _row(self.reconstructions, self.reconstructions_browse))
        form.addRow(self.pause_on_stall)
        form.addRow(self.beep_on_stall)
        form.addRow(_row(self.record_button, self.stop_button))
        form.addRow(_row(self.start_button, self.pause_button))
        form.addRow(_row(self.skip_button, self.abort_button))
        form.addRow("Phase", self.phase)
        form.addRow("File", self.file)
        form.addRow("Status", self.progress)

        self.browse.clicked.connect(self._browse_dir)
        self.protocol_browse.clicked.connect(self._browse_protocol)
        self.record_button.clicked.connect(self.record_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.start_button.clicked.connect(self.protocol_start)
        self.pause_button.toggled.connect(self.protocol_pause)
        self.skip_button.clicked.connect(self.protocol_skip)
        self.abort_button.clicked.connect(self._confirm_abort)
        self.note.textEdited.connect(self._note_edited)
        self.note.returnPressed.connect(self.commit_note)
        self.note_button.clicked.connect(self.commit_note)
        self.marker_button.clicked.connect(lambda: self.marker_requested.emit(_now()))
        # The hotkey works wherever the console's focus is (also while a note is typed), but
        # only in the console window: keys pressed in the participant's window stay theirs.
        self.marker_key = QtGui.QShortcut(QtGui.QKeySequence(MARKER_KEY), self)
        self.marker_key.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        self.marker_key.activated.connect(self._marker_key)
        self.marker_button.setToolTip(f"a numbered marker at this moment ({MARKER_KEY})")
        self.set_state(connected=False, recording=False, running=False)

    def _marker_key(self) -> None:
        if self.marker_button.isEnabled():
            self.marker_requested.emit(_now())

    # ------------------------------------------------------------------ values
    def set_protocols(self, names: list[str]) -> None:
        wanted = self.settings.get("session/protocol")
        self.protocol.clear()
        self.protocol.addItems(["none", *names])
        self.protocol.setCurrentText(wanted if wanted else "none")

    def values(self) -> dict[str, object]:
        """What the experimenter entered (also saved to the settings)."""
        v = {
            "participant": self.participant.text().strip(),
            "notes": self.notes.toPlainText(),
            "out_dir": self.out_dir.text().strip(),
            "protocol": self.protocol.currentText().strip(),
            "time_scale": self.time_scale.value(),
            "reconstructions": self.reconstructions.text().strip(),
        }
        s = self.settings
        s.set("session/out_dir", v["out_dir"])
        s.set("session/protocol", v["protocol"])
        s.set("session/time_scale", v["time_scale"])
        return v

    def _browse_reconstructions(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Session whose reconstructions the participant judges", "", "Sessions (*.h5)"
        )
        if path:
            self.reconstructions.setText(path)

    def _note_edited(self, text: str) -> None:
        if self._note_started is None and text:
            self._note_started = _now()
        elif not text:
            self._note_started = None

    def commit_note(self) -> None:
        """Add the note being written (Enter, the button, or the recording stopping)."""
        text = self.note.text().strip()
        if text:
            now = _now()
            started = self._note_started if self._note_started is not None else now
            self.note_added.emit(text, started, now)
        self.note.clear()
        self._note_started = None

    def new_session(self) -> None:
        """After a recording: the pseudonym and notes are blank for the next one."""
        self.participant.clear()
        self.notes.clear()

    def set_state(self, *, connected: bool, recording: bool, running: bool) -> None:
        self.record_button.setEnabled(connected and not recording)
        self.stop_button.setEnabled(recording)
        for w in (
            self.participant,
            self.notes,
            self.out_dir,
            self.protocol,
            self.time_scale,
            self.browse,
        ):
            w.setEnabled(not recording)
        for w in (self.note, self.note_button, self.marker_button):
            w.setEnabled(recording)
        self.start_button.setEnabled(recording and not running)
        for w in (self.pause_button, self.skip_button, self.abort_button):
            w.setEnabled(running)
        if not running and self.pause_button.isChecked():
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.blockSignals(False)

    def confirm(self, title: str, text: str) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self,
            title,
            text,
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def _confirm_abort(self) -> None:
        if self.confirm(
            "Abort the protocol?",
            "Abort the protocol now? Everything recorded so far stays in the file.",
        ):
            self.protocol_abort.emit()

    def _browse_dir(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Session folder")
        if path:
            self.out_dir.setText(path)

    def _browse_protocol(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Protocol", "", "Protocols (*.yaml *.yml)"
        )
        if path:
            self.protocol.setCurrentText(str(Path(path)))


def _now() -> float:
    from drivers.clock import local_clock

    return local_clock()


def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x)
    return w
