"""Self-Assessment Manikin ratings: valence and arousal on 1-9 scales."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from drivers.clock import local_clock

SCALES = {
    "valence": ("very unpleasant", "very pleasant"),
    "arousal": ("very calm", "very excited"),
}


class SamScale(QtWidgets.QWidget):
    """One row of nine buttons; emits ``rated(scale, value, lsl_time)`` when one is clicked."""

    rated = QtCore.pyqtSignal(str, int, float)

    def __init__(self, scale: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale
        low, high = SCALES[scale]
        self.value: int | None = None
        lay = QtWidgets.QHBoxLayout(self)
        lay.addWidget(QtWidgets.QLabel(f"<b>{scale.capitalize()}</b>  {low}"))
        self.group = QtWidgets.QButtonGroup(self)
        self.buttons: list[QtWidgets.QPushButton] = []
        for v in range(1, 10):
            b = QtWidgets.QPushButton(str(v))
            b.setCheckable(True)
            b.setMinimumSize(44, 44)
            b.setObjectName(f"sam_{scale}_{v}")
            b.setAccessibleName(f"{scale.capitalize()} {v}")  # screen readers: "Valence 7"
            self.group.addButton(b, v)
            self.buttons.append(b)
            lay.addWidget(b)
        lay.addWidget(QtWidgets.QLabel(high))
        self.group.idClicked.connect(self._clicked)

    def _clicked(self, value: int) -> None:
        t = local_clock()
        self.value = value
        self.rated.emit(self.scale, value, t)

    def reset(self) -> None:
        self.group.setExclusive(False)
        for b in self.buttons:
            b.setChecked(False)
        self.group.setExclusive(True)
        self.value = None


class SamPanel(QtWidgets.QWidget):
    """Valence and arousal scales; ``rated`` carries ``sam_valence``/``sam_arousal``."""

    rated = QtCore.pyqtSignal(str, int, float)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        self.scales = {name: SamScale(name) for name in SCALES}
        for s in self.scales.values():
            s.rated.connect(lambda scale, v, t: self.rated.emit(f"sam_{scale}", v, t))
            lay.addWidget(s)

    def reset(self) -> None:
        for s in self.scales.values():
            s.reset()
