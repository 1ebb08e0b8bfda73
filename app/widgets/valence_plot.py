"""Decoded against reported valence over a session, from its newest decoding run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from app.widgets.background import in_background

REPORTED_PEN = pg.mkPen((120, 120, 120), width=2)
DECODED_PEN = pg.mkPen((120, 40, 160), width=2)


def _load(path: Path) -> dict:
    from decoding.results import read_decoded_trajectory

    t = read_decoded_trajectory(path)
    return {
        "run": t.run,
        "decoder": t.decoder,
        "times": np.asarray(t.times, float),
        "valence": np.asarray(t.valence, float),
        "reported": np.asarray(t.reported, float),
        "fold": np.asarray(t.fold),
        "metrics": dict(t.metrics or {}),
    }


def _finite(value: object) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


class ValencePlot(QtWidgets.QWidget):
    """A window: the reported valence class (grey steps) and the decoded valence (P(positive)
    minus P(negative), purple) of every window, from the out-of-fold predictions of the run's
    primary decoder, with its honest score and chance level in the title."""

    loaded = QtCore.pyqtSignal()

    def __init__(self, session: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.session = Path(session)
        self.setWindowTitle(f"Valence: {self.session.name}")
        self.setAccessibleName("Valence plot")
        self.data: dict | None = None
        self.summary = QtWidgets.QLabel(f"reading {self.session.name}…")
        self.summary.setAccessibleName("Valence summary")
        self.summary.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setAccessibleName("Valence curves")
        self.plot.setLabel("bottom", "time in the session", units="s")
        self.plot.setLabel("left", "valence (-1 negative … +1 positive)")
        self.plot.setYRange(-1.1, 1.1)
        self.plot.addLegend(offset=(10, 10))
        self.reported = self.plot.plot(name="reported (keys)", pen=REPORTED_PEN)
        self.decoded = self.plot.plot(name="decoded (out of fold)", pen=DECODED_PEN)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.plot, 1)
        self.resize(900, 420)
        in_background(lambda: _load(self.session), self._show, self)

    def _show(self, data: dict | None, error: BaseException | None) -> None:
        if error is not None:
            self.summary.setText(f"cannot show the decoded valence: {error}")
            self.loaded.emit()
            return
        self.data = data
        t = data["times"] - data["times"][0]
        # Steps centred on each window's time, as the report's trajectory plot draws them.
        edges = np.concatenate([t, [t[-1] + (t[-1] - t[-2] if len(t) > 1 else 1.0)]])
        self.reported.setData(edges, data["reported"], stepMode="center")
        tested = data["fold"] >= 0
        self.decoded.setData(t, np.where(tested, data["valence"], np.nan), connect="finite")
        m = data["metrics"]
        f1, chance, p = (
            _finite(m.get(k)) for k in ("f1_weighted", "chance_f1_weighted", "p_value")
        )
        score = "weighted F1 not computed" if f1 is None else f"weighted F1 {f1:.3f}"
        if chance is not None and p is not None and m.get("n_permutations"):
            score += f" (chance {chance:.3f}, p = {p:.3f})"
        else:
            score += " (no chance level: the run had no permutations)"
        self.summary.setText(
            f"{data['decoder']} · {data['run']} · {score}; each window is predicted by a model "
            "that never saw it (out of fold)"
        )
        self.loaded.emit()
