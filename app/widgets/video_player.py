"""Play a generated reconstruction in the console, with its affect timeline under the picture.

Qt Multimedia (its FFmpeg backend ships with PyQt6) plays the MP4 with its sound; the timeline
below shows the segments the video was made from (coloured by affect, their valence as steps)
from the run's ``manifest.json``, with a cursor that follows the playback. Clicking the timeline
(or dragging the slider) seeks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtMultimedia, QtMultimediaWidgets, QtWidgets

from app.widgets.background import in_background
from app.widgets.review_panel import ReviewPanel, load_review

AFFECT_BRUSHES = {
    "negative": (70, 110, 200, 70),
    "neutral": (160, 160, 160, 50),
    "positive": (210, 70, 60, 70),
}


def timeline_segments(video: Path) -> tuple[list[dict], str]:
    """The segments a video was made from, and where its affect came from, per its manifest.

    ``reconstruction.mp4`` follows the manifest's segments, ``control_reordered.mp4`` the
    control's reordered ones; other videos (a segment's animation clip) have none.
    """
    manifest = video.parent / "manifest.json"
    if not manifest.is_file():
        return [], ""
    m = json.loads(manifest.read_text())
    source = f"{m.get('affect', {}).get('kind', '')} affect"
    if video.name == m.get("video"):
        return list(m.get("segments", [])), source
    control = m.get("control") or {}
    if video.name == control.get("video"):
        return list(control.get("segments", [])), source + ", reordered control"
    return [], ""


def _clock(ms: int) -> str:
    s = max(ms, 0) / 1000.0
    return f"{int(s // 60)}:{s % 60:04.1f}"


class AffectTimeline(pg.PlotWidget):
    """Segments as coloured bands with their valence, and the playback cursor."""

    seek = QtCore.pyqtSignal(float)  # seconds

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setAccessibleName("Affect timeline")
        self.setMaximumHeight(150)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setYRange(-1.1, 1.1)
        self.setLabel("left", "valence")
        self.setLabel("bottom", "video time", units="s")
        self.curve = self.plot(pen=pg.mkPen((40, 40, 40), width=2))
        self.cursor = pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen((0, 120, 0), width=2))
        self.addItem(self.cursor)
        self.bands: list[pg.LinearRegionItem] = []
        self.segments: list[dict] = []

    def set_segments(self, segments: list[dict]) -> None:
        for b in self.bands:
            self.removeItem(b)
        self.bands = []
        self.segments = segments
        if not segments:
            self.curve.setData([], [])
            return
        for s in segments:
            band = pg.LinearRegionItem(
                (s["start"], s["end"]),
                movable=False,
                brush=pg.mkBrush(*AFFECT_BRUSHES.get(s.get("affect", ""), (0, 0, 0, 20))),
                pen=pg.mkPen(None),
            )
            band.setZValue(-10)
            self.addItem(band)
            self.bands.append(band)
        edges = np.array([s["start"] for s in segments] + [segments[-1]["end"]], float)
        self.curve.setData(
            edges, np.array([s["valence"] for s in segments], float), stepMode="center"
        )
        self.setXRange(edges[0], edges[-1], padding=0)

    def set_time(self, seconds: float) -> None:
        self.cursor.setValue(seconds)

    def mousePressEvent(self, event) -> None:  # a click on the timeline seeks there
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            x = self.plotItem.vb.mapSceneToView(QtCore.QPointF(event.position())).x()
            self.seek.emit(max(0.0, float(x)))
            event.accept()
            return
        super().mousePressEvent(event)


class VideoPlayer(QtWidgets.QWidget):
    """A window playing ``video`` with Play/Pause, a slider, the time and the affect timeline,
    and beside it the review (:class:`~app.widgets.review_panel.ReviewPanel`): the segments'
    prompts, and with ``session`` (the file the video was generated from) the participant's
    sketch and melody."""

    def __init__(
        self, video: Path, parent: QtWidgets.QWidget | None = None, session: Path | None = None
    ) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.video = Path(video)
        self.session = Path(session) if session is not None else None
        self.setWindowTitle(f"Video: {self.video.name}")
        self.player = QtMultimedia.QMediaPlayer(self)
        self.audio = QtMultimedia.QAudioOutput(self)
        self.player.setAudioOutput(self.audio)
        self.view = QtMultimediaWidgets.QVideoWidget()
        self.view.setAccessibleName("Video")
        self.view.setMinimumSize(320, 240)
        self.player.setVideoOutput(self.view)
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setAccessibleName("Play or pause")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setAccessibleName("Seek")
        self.time = QtWidgets.QLabel("0:00.0 / 0:00.0")
        self.time.setAccessibleName("Playback position")
        self.about = QtWidgets.QLabel("")
        self.about.setAccessibleName("Timeline source")
        self.timeline = AffectTimeline()
        self.review = ReviewPanel()
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.play_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.time)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.view, 1)
        left.addLayout(row)
        left.addWidget(self.timeline)
        left.addWidget(self.about)
        lay = QtWidgets.QHBoxLayout(self)
        lay.addLayout(left, 1)
        lay.addWidget(self.review)
        self.resize(1040, 640)

        self.play_button.clicked.connect(self.toggle)
        self.slider.sliderMoved.connect(self.player.setPosition)
        self.timeline.seek.connect(lambda s: self.player.setPosition(int(s * 1000)))
        self.review.seek.connect(lambda s: self.player.setPosition(int(s * 1000)))
        self.player.positionChanged.connect(self._position)
        self.player.durationChanged.connect(self._duration)
        self.player.playbackStateChanged.connect(self._state)
        self.player.errorOccurred.connect(self._error)
        self.player.setSource(QtCore.QUrl.fromLocalFile(str(self.video.resolve())))
        in_background(lambda: timeline_segments(self.video), self._segments, self)
        in_background(lambda: load_review(self.video, self.session), self._review, self)

    def toggle(self) -> None:
        if self.player.playbackState() == QtMultimedia.QMediaPlayer.PlaybackState.PlayingState:
            self.player.pause()
        else:
            self.player.play()

    def _segments(self, result, error) -> None:
        if error is not None:
            self.about.setText(f"no affect timeline: {error}")
            return
        segments, source = result
        self.timeline.set_segments(segments)
        self.timeline.setVisible(bool(segments))
        self.about.setText(
            f"{len(segments)} segments from the {source}" if segments else "no affect timeline"
        )

    def _review(self, result, error) -> None:
        if error is not None:
            self.review.source.setText(f"cannot read what the video was made from: {error}")
            return
        self.review.show_review(result, self.session)

    def _position(self, ms: int) -> None:
        if not self.slider.isSliderDown():
            self.slider.setValue(ms)
        self.time.setText(f"{_clock(ms)} / {_clock(self.player.duration())}")
        self.timeline.set_time(ms / 1000.0)
        self.review.set_time(ms / 1000.0)

    def _duration(self, ms: int) -> None:
        self.slider.setRange(0, max(ms, 0))
        self.time.setText(f"{_clock(self.player.position())} / {_clock(ms)}")

    def _state(self, state) -> None:
        playing = state == QtMultimedia.QMediaPlayer.PlaybackState.PlayingState
        self.play_button.setText("Pause" if playing else "Play")

    def _error(self, error, text: str) -> None:
        self.about.setText(f"cannot play {self.video.name}: {text}")

    def closeEvent(self, event) -> None:
        self.player.stop()
        super().closeEvent(event)
