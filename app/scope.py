"""The live multichannel scope: traces, each channel's RMS beside them, and a spectrum view.

The widget never filters, decimates or reads hardware: about 30 times a second it hands the
newest :class:`~app.scope_feed.DisplayFrame` (display-filtered, centred, peak-decimated to
about twice the plot's pixel width, and already laid out in rows on the feed's thread) to its
curves, and skips the redraw when no new frame arrived. All channels of one quality colour are
one NaN-separated curve, so a redraw is four ``setData`` calls whatever the channel count. The
right axis shows each channel's RMS over the last second (twice a second). The spectrum view
(as OpenBCI GUI's FFT widget) shows every channel's power spectral density, estimated by the
feed (Welch, raw signal, so line noise shows) when the view is open.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from app.scope_feed import ScopeFeed

FLAG_COLOURS = {"": (30, 30, 30), "flat": (150, 150, 150), "noisy": (200, 120, 0)}
FLAG_COLOURS["railing"] = (200, 0, 0)


class ScopeWidget(QtWidgets.QWidget):
    """Scroll the last ``window`` seconds of every channel, offset vertically.

    Parameters
    ----------
    fps
        Redraw rate; the timer interval is ``1000 / fps`` ms (32: a little above the 30 a
        moving trace needs, so a late tick does not bring it below).
    """

    frame_drawn = QtCore.pyqtSignal(float)  # seconds the redraw took

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, fps: float = 32.0) -> None:
        super().__init__(parent)
        self.feed: ScopeFeed | None = None
        self.window = 5.0
        self.scale = 100.0  # stream units (uV) between neighbouring channel baselines
        self.frames = 0  # redraws that drew a new frame
        self.plot = pg.PlotWidget(background="w")
        self.plot.setAccessibleName("Scope traces")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.getPlotItem().setMenuEnabled(False)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._names: list[str] = []
        self._frame_number = 0
        self._rms_shown_at = 0.0
        self.rms: np.ndarray = np.zeros(0)
        self.plot.showAxis("right")
        self.plot.getAxis("right").setLabel("RMS, last second")
        # The spectrum view: every channel's PSD, log scale, shown on request.
        self.spectrum = pg.PlotWidget(background="w")
        self.spectrum.setAccessibleName("Spectrum")
        self.spectrum.setLabel("bottom", "frequency", units="Hz")
        self.spectrum.setLabel("left", "log10 power / Hz")
        self.spectrum.setMouseEnabled(x=False, y=False)
        self.spectrum.hideButtons()
        self.spectrum.getPlotItem().setMenuEnabled(False)
        self.spectrum_curve = self.spectrum.plot(pen=pg.mkPen((25, 118, 210), width=1))
        self.spectrum_summary = QtWidgets.QLabel("")
        self.spectrum_summary.setAccessibleName("Spectrum summary")
        self.spectrum_box = QtWidgets.QWidget()
        sbl = QtWidgets.QVBoxLayout(self.spectrum_box)
        sbl.setContentsMargins(0, 0, 0, 0)
        sbl.addWidget(self.spectrum, 1)
        sbl.addWidget(self.spectrum_summary)
        self.spectrum_box.hide()
        self.spectrum_max_hz = 70.0  # past 50 and 60 Hz, where line noise sits
        self._spectrum_number = 0
        # Over the traces while the source delivers nothing: they are the last ones received.
        self._stall_text = pg.TextItem("NO SIGNAL", color=(198, 40, 40), anchor=(0.5, 0.5))
        self._stall_text.setZValue(10)
        font = self._stall_text.textItem.font()
        font.setPointSize(28)
        font.setBold(True)
        self._stall_text.setFont(font)
        self._stalled = False
        # Events (markers, phases, notes) as vertical lines at their time on the traces.
        self._events: deque[tuple[float, str]] = deque(maxlen=500)
        self._event_lines: list[pg.InfiniteLine] = []
        self.split = QtWidgets.QSplitter()
        self.split.addWidget(self.plot)
        self.split.addWidget(self.spectrum_box)
        self.split.setStretchFactor(0, 2)
        self.split.setStretchFactor(1, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.split, 1)
        self.timer = QtCore.QTimer(self)
        # Precise: a coarse timer may fire 5 % late, and frames it misses are frames lost.
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(int(1000 / fps))
        self.timer.timeout.connect(self.redraw)

    # ------------------------------------------------------------------ setup
    def attach(self, feed: ScopeFeed, channel_names: list[str]) -> None:
        """Show ``feed``; one curve per channel, top to bottom in channel order."""
        self.detach()
        self.feed = feed
        for label, colour in FLAG_COLOURS.items():
            c = self.plot.plot(pen=pg.mkPen(colour, width=1), connect="finite")
            self.curves[label] = c
        self._names = list(channel_names)
        self._set_ticks()
        self._frame_number = 0
        self._spectrum_number = 0
        feed.spectrum_on = self.spectrum_box.isVisibleTo(self)
        feed.spectrum_max_hz = self.spectrum_max_hz
        feed.set_view(self.window, 2 * max(200, self.plot.width()), self.scale)
        self._apply_ranges()
        self.timer.start()

    def detach(self) -> None:
        self.timer.stop()
        for c in self.curves.values():
            self.plot.removeItem(c)
        self.curves = {}
        self._names = []
        self.rms = np.zeros(0)
        self.plot.getAxis("right").setTicks([[]])
        self.spectrum_curve.setData([], [])
        self.spectrum_summary.setText("")
        self.feed = None

    @property
    def n_channels(self) -> int:
        return len(self._names)

    def trace(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Channel ``i`` as drawn now: times (s, <= 0) and values (centred, before its row
        offset)."""
        frame = self.feed.frame if self.feed is not None else None
        if frame is None or self._frame_number == 0:
            return np.zeros(0), np.zeros(0)
        return frame.x, frame.y[i]

    def show_spectrum(self, on: bool) -> None:
        """Show or hide the spectrum view (the feed estimates spectra only while shown)."""
        was = self.spectrum_box.isVisibleTo(self)
        self.spectrum_box.setVisible(on)
        if on and not was:
            # The traces keep two thirds of the width (once the layout has placed the view).
            QtCore.QTimer.singleShot(0, self._share_width)
        if self.feed is not None:
            self.feed.spectrum_on = on

    def _share_width(self) -> None:
        total = self.split.width()
        if total > 3:
            self.split.setSizes([2 * total // 3, total - 2 * total // 3])

    def _set_ticks(self) -> None:
        rows = [(-i * self.scale, name) for i, name in enumerate(self._names)]
        self.plot.getAxis("left").setTicks([rows])
        self._show_rms(force=True)

    def _show_rms(self, *, force: bool = False) -> None:
        """The right axis: each channel's RMS at its row, at most twice a second."""
        now = time.monotonic()
        if not force and now - self._rms_shown_at < 0.5:
            return
        self._rms_shown_at = now
        rms = self.rms
        ticks = [
            (-i * self.scale, f"{rms[i]:.3g}" if i < len(rms) else "")
            for i in range(len(self._names))
        ]
        self.plot.getAxis("right").setTicks([ticks])

    def set_window(self, seconds: float) -> None:
        self.window = max(0.5, float(seconds))
        self._apply_ranges()

    def set_scale(self, units_per_channel: float) -> None:
        self.scale = max(1e-3, float(units_per_channel))
        if self.feed is not None:
            self.feed.set_view(self.window, None, self.scale)
        if self._names:
            self._set_ticks()
        self._apply_ranges()

    def auto_scale(self) -> float:
        """A scale at which nearly every channel's trace stays in its own row.

        Uses the 90th percentile over channels of each channel's 1-99 % range in the window,
        so one broken channel does not shrink all the others.
        """
        if self.feed is None:
            return self.scale
        data, _ = self.feed.latest(self.window)
        if len(data) < 2:
            return self.scale
        spread = np.percentile(data, 99, axis=0) - np.percentile(data, 1, axis=0)
        scale = float(np.percentile(spread, 90))
        if scale > 0 and np.isfinite(scale):
            # Round to 1, 2 or 5 times a power of ten: numbers an experimenter can read.
            exp = 10 ** np.floor(np.log10(scale))
            scale = min((m * exp for m in (1, 2, 5, 10) if m * exp >= scale), default=scale)
            self.set_scale(scale)
        return self.scale

    def _apply_ranges(self) -> None:
        n = max(1, len(self._names))
        self.plot.setXRange(-self.window, 0, padding=0)
        self.plot.setYRange(-(n - 0.5) * self.scale, 0.5 * self.scale, padding=0)

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Hand the feed's newest frame to the curves (timer slot)."""
        feed = self.feed
        if feed is None:
            return
        t0 = time.perf_counter()
        feed.set_view(self.window, 2 * max(200, self.plot.width()), self.scale)
        frame = feed.frame
        if frame is not None and frame.number != self._frame_number:
            self._frame_number = frame.number
            for label, c in self.curves.items():
                x, y = frame.traces.get(label, ((), ()))
                c.setData(x, y, connect="finite")
            self.rms = frame.rms
            self._show_rms()
            self._draw_events(frame.t_end)
            self.frames += 1
            self.frame_drawn.emit(time.perf_counter() - t0)
        spectrum = feed.spectrum
        if (
            spectrum is not None
            and spectrum.number != self._spectrum_number
            and self.spectrum_box.isVisibleTo(self)
        ):
            self._spectrum_number = spectrum.number
            self._draw_spectrum(spectrum)

    def _draw_spectrum(self, spectrum) -> None:
        fx, fy = spectrum.trace
        self.spectrum_curve.setData(fx, fy, connect="finite")
        top = min(self.spectrum_max_hz, float(spectrum.freqs[-1]))
        self.spectrum.setXRange(0, top, padding=0)
        freq, ch = spectrum.peak(1.0, top)
        name = self._names[ch] if 0 <= ch < len(self._names) else "?"
        self.spectrum_summary.setText(
            f"Welch, {spectrum.seconds:.0f} s of raw signal, 1-Hz bins; strongest line "
            f"{freq:.1f} Hz (channel {name})"
        )

    def add_event(self, t: float, label: str) -> None:
        """Draw an event at LSL time ``t`` while it is inside the window."""
        self._events.append((float(t), label))

    def visible_events(self) -> list[tuple[float, str]]:
        """``(x, label)`` of the event lines drawn now (x in seconds, <= 0)."""
        return [
            (line.value(), line.label.format if line.label else "")
            for line in self._event_lines
            if line.isVisible()
        ]

    def _draw_events(self, t_end: float) -> None:
        shown = [(t - t_end, lab) for t, lab in self._events if -self.window <= t - t_end <= 0]
        shown = shown[-50:]  # the newest, if a burst brings more than fit
        while len(self._event_lines) < len(shown):
            line = pg.InfiniteLine(
                angle=90,
                movable=False,
                pen=pg.mkPen((25, 118, 210), width=1, style=QtCore.Qt.PenStyle.DashLine),
                label="",
                labelOpts={"position": 0.98, "color": (25, 118, 210), "anchors": [(0, 0), (0, 0)]},
            )
            self.plot.addItem(line)
            self._event_lines.append(line)
        for i, line in enumerate(self._event_lines):
            if i < len(shown):
                x, lab = shown[i]
                line.setValue(x)
                line.label.setFormat(lab)
                line.show()
            else:
                line.hide()

    def set_stalled(self, stalled: bool) -> None:
        """Show "NO SIGNAL" over the (frozen) traces, or take it away."""
        if stalled == self._stalled:
            return
        self._stalled = stalled
        if stalled:
            n = max(1, len(self._names))
            self._stall_text.setPos(-self.window / 2, -(n - 1) * self.scale / 2)
            self.plot.addItem(self._stall_text)
        else:
            self.plot.removeItem(self._stall_text)

    def flagged_channels(self) -> dict[str, str]:
        """Channel name -> flag for channels that are flat, railing or noisy."""
        if self.feed is None:
            return {}
        flags = self.feed.flags
        out = {}
        for i, name in enumerate(self._names):
            lab = flags.label(i)
            if lab:
                out[name] = lab
        return out
