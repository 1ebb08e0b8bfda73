"""Scope display settings (time window, scale, display filters, spectrum view) and signal
quality."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from app.settings import AppSettings


class DisplayPanel(QtWidgets.QGroupBox):
    """Spin boxes for the scope; emits ``changed`` when any of them changes.

    The filters affect only what the scope shows; the recording is always raw.
    """

    changed = QtCore.pyqtSignal()

    def __init__(self, settings: AppSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Display (the recording is always raw)", parent)
        self.settings = settings
        self.window = _spin(0.5, 60.0, settings.get("scope/window"), " s", 1)
        self.scale = _spin(1.0, 1_000_000.0, settings.get("scope/scale"), " µV/ch", 0)
        self.auto_button = QtWidgets.QPushButton("Auto")
        self.highpass = _spin(0.0, 100.0, settings.get("scope/highpass"), " Hz (0 = off)", 1)
        self.notch = QtWidgets.QComboBox()
        for label, hz in (("off", 0.0), ("50 Hz", 50.0), ("60 Hz", 60.0)):
            self.notch.addItem(label, hz)
        self.notch.setCurrentIndex(max(0, self.notch.findData(settings.get("scope/notch"))))
        self.spectrum = QtWidgets.QCheckBox("Spectrum (PSD) beside the traces")
        self.spectrum.setAccessibleName("Show spectrum")
        self.spectrum.setChecked(settings.get("scope/spectrum"))
        self.quality = QtWidgets.QLabel("–")
        self.quality.setWordWrap(True)
        self.quality.setAccessibleName("Channel quality")
        self.rate = QtWidgets.QLabel("–")
        self.rate.setAccessibleName("Signal rate")
        form = QtWidgets.QFormLayout(self)
        form.addRow("Time window", self.window)
        scale_row = QtWidgets.QWidget()
        sl = QtWidgets.QHBoxLayout(scale_row)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.scale, 1)
        sl.addWidget(self.auto_button)
        form.addRow("Scale", scale_row)
        form.addRow("High-pass", self.highpass)
        form.addRow("Notch", self.notch)
        form.addRow("", self.spectrum)
        form.addRow("Rate", self.rate)
        form.addRow("Channels", self.quality)
        for w in (self.window, self.scale, self.highpass):
            w.valueChanged.connect(self._changed)
        self.notch.currentIndexChanged.connect(self._changed)
        self.spectrum.toggled.connect(lambda on: settings.set("scope/spectrum", bool(on)))

    def _changed(self) -> None:
        s = self.settings
        s.set("scope/window", self.window.value())
        s.set("scope/scale", self.scale.value())
        s.set("scope/highpass", self.highpass.value())
        s.set("scope/notch", self.notch.currentData())
        self.changed.emit()

    def clear_source(self) -> None:
        """No source: no rate, no channel verdicts."""
        self.rate.setText("–")
        self.quality.setText("–")

    def show_quality(self, flagged: dict[str, str]) -> None:
        if not flagged:
            self.quality.setText("all channels look fine")
            return
        by_flag: dict[str, list[str]] = {}
        for name, flag in flagged.items():
            by_flag.setdefault(flag, []).append(name)
        self.quality.setText(
            "; ".join(f"{flag}: {', '.join(names)}" for flag, names in sorted(by_flag.items()))
        )


def _spin(lo: float, hi: float, value: float, suffix: str, decimals: int):
    w = QtWidgets.QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setDecimals(decimals)
    w.setValue(value)
    w.setSuffix(suffix)
    w.setKeyboardTracking(False)
    return w
