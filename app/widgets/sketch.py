"""The participant's sketch canvas: mouse or tablet, with undo and clear.

Every point is timestamped on the LSL clock in the event handler (:func:`app.keys.input_time`)
and handed on through :attr:`SketchCanvas.points_ready` in drawing order (batched per stroke
segment, so the writer thread sees a few calls per second, not one per mouse move). Clear and
undo are recorded as points with stroke id -1 and -2 (SPEC.md), so the file can replay exactly
what happened.
"""

from __future__ import annotations

from itertools import pairwise

from PyQt6 import QtCore, QtGui, QtWidgets

from app.keys import input_time
from drivers.clock import local_clock

CLEAR_STROKE = -1
UNDO_STROKE = -2


class SketchCanvas(QtWidgets.QWidget):
    """A white canvas the participant draws on.

    Signals
    -------
    points_ready(list)
        ``(stroke, timestamp, x, y, pressure)`` tuples, in drawing order.
    """

    points_ready = QtCore.pyqtSignal(list)

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, pen_width: float = 4.0):
        super().__init__(parent)
        self.setAccessibleName("Sketch canvas")
        self.setMinimumSize(400, 300)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_StaticContents)
        self.setCursor(QtCore.Qt.CursorShape.CrossCursor)
        self.pen_width = pen_width
        self.strokes: list[list[tuple[float, float, float]]] = []  # what is visible now
        self._next_id = 0
        self._current: list[tuple[float, float, float]] | None = None
        self._pending: list[tuple] = []
        self._tablet_down = False

    # ------------------------------------------------------------------ input
    def _point(self, t: float, pos: QtCore.QPointF, pressure: float) -> None:
        x, y = float(pos.x()), float(pos.y())
        self._current.append((x, y, pressure))
        self._pending.append((self._next_id, t, x, y, pressure))
        self.update()

    def _begin(self, t: float, pos: QtCore.QPointF, pressure: float) -> None:
        self._current = []
        self.strokes.append(self._current)
        self._point(t, pos, pressure)

    def _end(self) -> None:
        if self._current is not None:
            self._current = None
            self._next_id += 1
            self.flush()

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self.points_ready.emit(batch)

    def mousePressEvent(self, e: QtGui.QMouseEvent) -> None:
        t = input_time(e, local_clock())
        if e.button() == QtCore.Qt.MouseButton.LeftButton and not self._tablet_down:
            self._begin(t, e.position(), 1.0)

    def mouseMoveEvent(self, e: QtGui.QMouseEvent) -> None:
        t = input_time(e, local_clock())
        if self._current is not None and not self._tablet_down:
            self._point(t, e.position(), 1.0)
            if len(self._pending) >= 64:
                self.flush()

    def mouseReleaseEvent(self, e: QtGui.QMouseEvent) -> None:
        t = input_time(e, local_clock())
        if self._current is not None and not self._tablet_down:
            self._point(t, e.position(), 1.0)
            self._end()

    def tabletEvent(self, e: QtGui.QTabletEvent) -> None:
        t = input_time(e, local_clock())
        kind = e.type()
        pressure = float(e.pressure())
        if kind == QtCore.QEvent.Type.TabletPress:
            self._tablet_down = True
            self._begin(t, e.position(), pressure)
        elif kind == QtCore.QEvent.Type.TabletMove and self._current is not None:
            self._point(t, e.position(), pressure)
            if len(self._pending) >= 64:
                self.flush()
        elif kind == QtCore.QEvent.Type.TabletRelease and self._current is not None:
            self._point(t, e.position(), pressure)
            self._end()
            self._tablet_down = False
        e.accept()  # otherwise Qt synthesises mouse events and every point arrives twice

    # ------------------------------------------------------------------ actions
    def undo(self) -> None:
        """Remove the last stroke (recorded as a point with stroke id -2)."""
        if self.strokes:
            self.strokes.pop()
            self._pending.append((UNDO_STROKE, local_clock(), 0.0, 0.0, 0.0))
            self.flush()
            self.update()

    def clear(self) -> None:
        """Remove every stroke (recorded as a point with stroke id -1)."""
        self.strokes = []
        self._pending.append((CLEAR_STROKE, local_clock(), 0.0, 0.0, 0.0))
        self.flush()
        self.update()

    def reset(self) -> None:
        """A fresh canvas for the next memory (nothing recorded)."""
        self.strokes, self._pending, self._current, self._next_id = [], [], None, 0
        self.update()

    def to_png(self) -> bytes:
        """The visible sketch as PNG bytes."""
        image = QtGui.QImage(self.size(), QtGui.QImage.Format.Format_RGB32)
        image.fill(QtCore.Qt.GlobalColor.white)
        painter = QtGui.QPainter(image)
        self._paint_strokes(painter)
        painter.end()
        data = QtCore.QByteArray()
        buf = QtCore.QBuffer(data)
        buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
        image.save(buf, "PNG")
        buf.close()
        return bytes(data.data())

    # ------------------------------------------------------------------ painting
    def _paint_strokes(self, painter: QtGui.QPainter) -> None:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        for stroke in self.strokes:
            for (x0, y0, _), (x1, y1, p1) in pairwise(stroke):
                pen = QtGui.QPen(QtGui.QColor(20, 20, 20), max(0.5, self.pen_width * p1))
                pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
                painter.setPen(pen)
                painter.drawLine(QtCore.QPointF(x0, y0), QtCore.QPointF(x1, y1))
            if len(stroke) == 1:
                x, y, p = stroke[0]
                painter.setPen(QtGui.QPen(QtGui.QColor(20, 20, 20), self.pen_width * p))
                painter.drawPoint(QtCore.QPointF(x, y))

    def paintEvent(self, e: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtCore.Qt.GlobalColor.white)
        painter.setPen(QtGui.QColor(200, 200, 200))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        self._paint_strokes(painter)
        painter.end()
