"""Choose a source: the synthetic board, a BrainFlow board, a live LSL stream or a file.

The panel only builds a source specification (the same strings ``recall-lab record
--source`` takes, see :mod:`drivers.spec`); the console connects it. Looking up LSL streams
takes about a second, so it runs on a worker thread.
"""

from __future__ import annotations

import threading

from PyQt6 import QtCore, QtWidgets

from app.settings import AppSettings

KINDS = (
    ("synthetic", "Synthetic board"),
    ("brainflow", "BrainFlow board"),
    ("lsl", "LSL stream"),
    ("replay", "Replay a file"),
)


def build_spec(
    kind: str,
    *,
    board: str = "",
    params: str = "",
    lsl_name: str = "",
    replay_file: str = "",
    speed: float = 1.0,
) -> str:
    """The source specification for the panel's fields (``brainflow:cyton?serial_port=...``)."""
    if kind == "synthetic":
        return "synthetic"
    if kind == "brainflow":
        query = "&".join(p.strip() for p in params.replace(",", "&").split("&") if p.strip())
        return f"brainflow:{board.strip()}" + (f"?{query}" if query else "")
    if kind == "lsl":
        return f"lsl:{lsl_name.strip()}"
    if kind == "replay":
        return f"replay:{replay_file.strip()}?speed={speed:g}"
    raise ValueError(f"unknown source kind {kind!r}")


def stream_label(s: dict) -> str:
    """One LSL stream as the list shows it: name, type, channels, rate, format, host."""
    rate = float(s.get("rate") or 0)
    rate_text = f"{rate:g} Hz" if rate else "irregular"
    kind = s.get("type") or "no type"
    return (
        f"{s['name']} ({kind}, {s['channels']} ch, {rate_text}, {s.get('format', '?')}, "
        f"on {s.get('hostname') or '?'})"
    )


def stream_target(s: dict) -> str:
    """How to find that stream again: its source_id when it has one (exact), else its name."""
    return f"source_id={s['source_id']}" if s.get("source_id") else f"name={s['name']}"


class SourcePanel(QtWidgets.QGroupBox):
    """Source choice with Connect / Disconnect buttons.

    Signals
    -------
    connect_requested(spec)
    disconnect_requested()
    """

    connect_requested = QtCore.pyqtSignal(str)
    disconnect_requested = QtCore.pyqtSignal()
    _streams_found = QtCore.pyqtSignal(list, str)

    def __init__(self, settings: AppSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Source", parent)
        self.settings = settings
        self.kind = QtWidgets.QComboBox()
        self.kind.setAccessibleName("Source kind")
        for key, label in KINDS:
            self.kind.addItem(label, key)
        self.board = QtWidgets.QLineEdit(settings.get("source/board"))
        self.board.setPlaceholderText("board name or id, e.g. cyton, 0")
        self.params = QtWidgets.QLineEdit(settings.get("source/board_params"))
        self.params.setPlaceholderText("serial_port=/dev/ttyUSB0&ip_port=…")
        self.lsl = QtWidgets.QComboBox()
        self.lsl.setAccessibleName("LSL stream")
        self.lsl.setEditable(True)
        self.lsl.setCurrentText(settings.get("source/lsl_name"))
        self.refresh = QtWidgets.QPushButton("Refresh")
        self.replay_file = QtWidgets.QLineEdit(settings.get("source/replay_file"))
        self.browse = QtWidgets.QPushButton("Browse…")
        self.speed = QtWidgets.QDoubleSpinBox()
        self.speed.setRange(0.1, 100.0)
        self.speed.setValue(settings.get("source/replay_speed"))
        self.speed.setSuffix(" ×")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.disconnect_button = QtWidgets.QPushButton("Disconnect")
        self.disconnect_button.setEnabled(False)

        form = QtWidgets.QFormLayout(self)
        form.addRow("Kind", self.kind)
        self._rows = {
            "brainflow": [("Board", self.board), ("Parameters", self.params)],
            "lsl": [("Stream", _row(self.lsl, self.refresh))],
            "replay": [("File", _row(self.replay_file, self.browse)), ("Speed", self.speed)],
        }
        for rows in self._rows.values():
            for label, w in rows:
                form.addRow(label, w)
        form.addRow(_row(self.connect_button, self.disconnect_button))
        self._form = form

        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.refresh.clicked.connect(self.refresh_streams)
        self.browse.clicked.connect(self._browse)
        self.connect_button.clicked.connect(lambda: self.connect_requested.emit(self.spec()))
        self.disconnect_button.clicked.connect(self.disconnect_requested)
        self._streams_found.connect(self._show_streams)
        i = self.kind.findData(settings.get("source/kind"))
        self.kind.setCurrentIndex(max(0, i))
        self._kind_changed()

    def current_kind(self) -> str:
        return self.kind.currentData()

    def set_spec(self, spec: str) -> None:
        """Fill the fields from a specification given on the command line."""
        kind, _, rest = spec.partition(":")
        target, _, query = rest.partition("?")
        if kind == "brainflow":
            self.board.setText(target)
            self.params.setText(query)
        elif kind == "lsl":
            self.lsl.setCurrentText(target)
        elif kind == "replay":
            self.replay_file.setText(target)
        i = self.kind.findData(kind if kind in dict(KINDS) else "synthetic")
        self.kind.setCurrentIndex(max(0, i))

    def spec(self) -> str:
        kind = self.current_kind()
        s = self.settings
        s.set("source/kind", kind)
        s.set("source/board", self.board.text())
        s.set("source/board_params", self.params.text())
        s.set("source/lsl_name", self.lsl_target())
        s.set("source/replay_file", self.replay_file.text())
        s.set("source/replay_speed", self.speed.value())
        return build_spec(
            kind,
            board=self.board.text(),
            params=self.params.text(),
            lsl_name=self.lsl_target(),
            replay_file=self.replay_file.text(),
            speed=self.speed.value(),
        )

    def set_connected(self, connected: bool) -> None:
        self.connect_button.setEnabled(not connected)
        self.disconnect_button.setEnabled(connected)
        self.kind.setEnabled(not connected)

    def _kind_changed(self) -> None:
        kind = self.current_kind()
        for k, rows in self._rows.items():
            for _, w in rows:
                self._form.setRowVisible(w, k == kind)
        if kind == "lsl" and self.lsl.count() == 0:
            self.refresh_streams()

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Replay a recording",
            "",
            "Recordings (*.h5 *.xdf *.edf *.bdf *.fif *.vhdr *.set);;All files (*)",
        )
        if path:
            self.replay_file.setText(path)

    def refresh_streams(self) -> None:
        """Look for LSL streams on a worker thread; the list fills when it answers."""
        self.refresh.setEnabled(False)
        self.refresh.setText("Looking…")

        def look() -> None:
            try:
                from drivers.lsl_source import list_lsl_streams

                found = [(stream_label(s), stream_target(s)) for s in list_lsl_streams()]
                self._streams_found.emit(found, "")
            except Exception as exc:
                self._streams_found.emit([], str(exc))

        threading.Thread(target=look, name="lsl-lookup", daemon=True).start()

    def _show_streams(self, streams: list, error: str) -> None:
        current = self.lsl_target()
        self.lsl.clear()
        for label, target in streams:
            self.lsl.addItem(label, target)
        # The stream asked for before stays chosen: its entry if it is listed, else as typed.
        i = self.lsl.findData(current)
        if i >= 0:
            self.lsl.setCurrentIndex(i)
        else:
            self.lsl.setCurrentText(current or (streams[0][0] if streams else ""))
        self.refresh.setEnabled(True)
        self.refresh.setText("Refresh")
        self.lsl.setToolTip(error or f"{len(streams)} stream(s) found")

    def lsl_target(self) -> str:
        """What the LSL field asks for: a listed stream's exact lookup, or the typed text."""
        i = self.lsl.currentIndex()
        if i >= 0 and self.lsl.itemText(i) == self.lsl.currentText():
            data = self.lsl.itemData(i)
            if data:
                return str(data)
        return self.lsl.currentText()


def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x)
    return w
