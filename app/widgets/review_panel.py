"""Beside a reconstruction's video: what it was made from, for the experimenter's review.

The segments' prompts (the one playing is selected as the video goes on; a click on one seeks
to it), the participant's sketch and guiding melody from the session file (the melody plays on
a worker thread through PortAudio). Everything is read on a worker; the GUI thread only shows it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets


def load_review(video: Path, session: Path | None) -> dict:
    """The segments (with their prompts) of ``video`` per its run's manifest, and the memory's
    sketch (PNG bytes) and melody (``audio``, ``rate``) from ``session`` when given."""
    manifest_path = video.parent / "manifest.json"
    if not manifest_path.is_file():
        return {"segments": [], "memory": None}
    m = json.loads(manifest_path.read_text())
    by_index = {s.get("index"): s for s in m.get("segments", [])}
    if video.name == m.get("video"):
        segments = list(m.get("segments", []))
    elif video.name == (m.get("control") or {}).get("video"):
        # The control's segments are the same ones reordered: their prompts by segment index.
        segments = [
            {**by_index.get(s.get("index"), {}), **s} for s in m["control"].get("segments", [])
        ]
    else:
        segments = []
    out: dict = {"segments": segments, "memory": m.get("memory"), "sketch": None, "melody": None}
    if session is not None and out["memory"]:
        from data_schema.reader import read_session

        mem = read_session(session, load_data=False).memories.get(out["memory"])
        if mem is not None:
            out["sketch"] = mem.sketch_png
            if mem.melody is not None and len(mem.melody):
                out["melody"] = (np.asarray(mem.melody, np.float32), int(mem.melody_rate))
    return out


class ReviewPanel(QtWidgets.QWidget):
    """Segment prompts, sketch and melody of the reconstruction on show.

    Signals
    -------
    seek(float)
        Seconds: the start of the segment the experimenter clicked.
    """

    seek = QtCore.pyqtSignal(float)
    _melody_error = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompts = QtWidgets.QListWidget()
        self.prompts.setAccessibleName("Segment prompts")
        self.prompts.setWordWrap(True)
        self.sketch = QtWidgets.QLabel("no sketch")
        self.sketch.setAccessibleName("Sketch")
        self.sketch.setFixedSize(200, 200)
        self.sketch.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.sketch.setStyleSheet("background: white; border: 1px solid #ccc;")
        self.melody_button = QtWidgets.QPushButton("Play melody")
        self.melody_button.setAccessibleName("Play melody")
        self.melody_button.setEnabled(False)
        self.source = QtWidgets.QLabel("")
        self.source.setAccessibleName("Review source")
        self.source.setWordWrap(True)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(QtWidgets.QLabel("<b>Segments</b> (click one to go there)"))
        lay.addWidget(self.prompts, 1)
        lay.addWidget(QtWidgets.QLabel("<b>Sketch</b>"))
        lay.addWidget(self.sketch)
        lay.addWidget(self.melody_button)
        lay.addWidget(self.source)
        self.segments: list[dict] = []
        self._melody: tuple[np.ndarray, int] | None = None
        self.prompts.itemClicked.connect(self._clicked)
        self.melody_button.clicked.connect(self.play_melody)
        self._melody_error.connect(self.source.setText)

    def show_review(self, review: dict, session: Path | None) -> None:
        self.segments = review["segments"]
        self.prompts.clear()
        for s in self.segments:
            text = (
                f"{s['start']:.1f}-{s['end']:.1f} s  {s.get('affect', '')} "
                f"({s.get('valence', 0):+.2f})\n"
                f"image: {s.get('prompt_image', '-')}\nmusic: {s.get('prompt_music', '-')}"
            )
            self.prompts.addItem(text)
        head = f"memory {review['memory']}" if review.get("memory") else "no manifest"
        parts = [f"{head} of {session.name}" if session is not None else head]
        if review.get("sketch"):
            image = QtGui.QImage.fromData(review["sketch"])
            self.sketch.setPixmap(
                QtGui.QPixmap.fromImage(image).scaled(
                    self.sketch.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio
                )
            )
            parts.append(f"sketch {image.width()} x {image.height()}")
        else:
            parts.append("no sketch")
        self._melody = review.get("melody")
        if self._melody is not None:
            audio, rate = self._melody
            parts.append(f"melody {len(audio) / rate:.1f} s")
        else:
            parts.append(
                "no melody"
                if session is not None
                else "open from a session for the sketch and the melody"
            )
        self.melody_button.setEnabled(self._melody is not None)
        self.source.setText(", ".join(parts))

    def set_time(self, seconds: float) -> None:
        """Select the segment playing at ``seconds``."""
        for i, s in enumerate(self.segments):
            if s["start"] <= seconds < s["end"]:
                if self.prompts.currentRow() != i:
                    self.prompts.setCurrentRow(i)
                return

    def _clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        row = self.prompts.row(item)
        if 0 <= row < len(self.segments):
            self.seek.emit(float(self.segments[row]["start"]))

    def play_melody(self) -> None:
        """Play the participant's melody on a worker (PortAudio's default output)."""
        if self._melody is None:
            return
        audio, rate = self._melody

        def work() -> None:
            try:
                import sounddevice as sd

                sd.play(audio, rate)
                sd.wait()
            except Exception as exc:  # no sound device: say so, nothing else changes
                self._melody_error.emit(f"cannot play the melody: {exc}")

        threading.Thread(target=work, name="review-melody", daemon=True).start()
