"""The console survives its LSL source disappearing mid-session and keeps recording after.

A real LSL outlet on loopback (unique source_id) sends a counting signal; it is destroyed
mid-recording and a new outlet with the same source_id appears later, as when an amplifier's
software restarts. The file must hold samples from before and after, with the gap marked.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui

RATE = 250.0


class CountingOutlet:
    """An LSL outlet whose first channel counts samples, pushed from a thread."""

    def __init__(self, name: str, source_id: str, start: int = 0) -> None:
        import pylsl

        info = pylsl.StreamInfo(name, "EEG", 4, RATE, "float32", source_id)
        self.outlet = pylsl.StreamOutlet(info)
        self.count = start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t_next = time.monotonic()
        while not self._stop.is_set():
            chunk = np.zeros((10, 4), np.float32)
            chunk[:, 0] = np.arange(self.count, self.count + 10)
            chunk[:, 1:] = np.random.default_rng(self.count).normal(0, 10, (10, 3))
            self.outlet.push_chunk(chunk)
            self.count += 10
            t_next += 10 / RATE
            self._stop.wait(max(0.0, t_next - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.outlet = None  # destroys the outlet: the stream disappears from the network


def test_source_disappears_and_returns(qtbot, tmp_path, unique_id, monkeypatch):
    from app.console import ConsoleWindow
    from app.settings import AppSettings
    from data_schema.reader import read_session

    settings = AppSettings(tmp_path / "settings.ini")
    settings.set("session/out_dir", str(tmp_path))
    settings.set("session/protocol", "none")
    win = ConsoleWindow(settings)
    win.session_panel.participant.setText("P001")
    qtbot.addWidget(win)
    # A failure must not leave a modal "stop recording?" or warning dialog that blocks teardown.
    warnings_shown: list[str] = []
    monkeypatch.setattr(win.session_panel, "confirm", lambda *a: True)
    monkeypatch.setattr(win, "_warn", lambda title, text: warnings_shown.append(text))
    win.show()
    sender = CountingOutlet(unique_id, unique_id)
    try:
        win.connect_source(f"lsl:source_id={unique_id}?stall_timeout=0.5&markers=none")
        qtbot.waitUntil(lambda: win.feed is not None, timeout=20000)
        path = win.start_recording()
        assert path is not None
        qtbot.waitUntil(
            lambda: win.controller.recorder.status().samples_written["eeg"] > 200, timeout=10000
        )
        sent_before = sender.count
        sender.close()  # the stream disappears

        def labels():
            return [e.label for e in win.controller.log.read_since(0)[0]]

        qtbot.waitUntil(lambda: "gap_start" in labels(), timeout=10000)
        # The console keeps running: its status timer shows the stall.
        qtbot.waitUntil(lambda: "stalled" in win.display_panel.rate.text(), timeout=5000)

        sender = CountingOutlet(unique_id, unique_id, start=100_000)  # it comes back
        qtbot.waitUntil(lambda: "gap_end" in labels(), timeout=30000)
        # liblsl may take 1-2 s to reconnect: wait for samples written after the gap ended.
        written = win.controller.recorder.status().samples_written["eeg"]
        qtbot.waitUntil(
            lambda: win.controller.recorder.status().samples_written["eeg"] > written + 100,
            timeout=10000,
        )
        win.stop_recording()
    finally:
        sender.close()
        if win.controller.recording:
            win.stop_recording()  # so closing the window does not ask
        win.controller.close()
        win.close()

    assert not warnings_shown
    s = read_session(path)
    counter = s.eeg.data[:, 0]
    before, after = counter[counter < 100_000], counter[counter >= 100_000]
    assert len(before) > 100 and len(after) > 20
    # Nothing lost on either side of the gap: the counter steps by one.
    assert np.all(np.diff(before) == 1) and before[-1] >= sent_before - 10
    assert np.all(np.diff(after) == 1)
    gap_labels = [e.label for e in s.events if e.source == "recorder"]
    assert "gap_start" in gap_labels and "gap_end" in gap_labels
    gap_end = next(e for e in s.events if e.label == "gap_end")
    assert gap_end.duration > 0.5
    ts = s.eeg.timestamps
    i = len(before)
    assert ts[i] - ts[i - 1] > 0.5  # the time axis shows the gap


class SineOutlet:
    """An LSL outlet of 4 channels: 10-Hz sines of amplitude 20, and channel 3 at 23 Hz
    with amplitude 60 (RMS 14.1 and 42.4)."""

    def __init__(self, source_id: str) -> None:
        import pylsl

        info = pylsl.StreamInfo(source_id, "EEG", 4, RATE, "float32", source_id)
        info.set_channel_labels(["A", "B", "C", "D"])
        self.outlet = pylsl.StreamOutlet(info)
        self.n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t_next = time.monotonic()
        while not self._stop.is_set():
            t = (self.n + np.arange(10)) / RATE
            chunk = np.repeat((20 * np.sin(2 * np.pi * 10 * t))[:, None], 4, axis=1)
            chunk[:, 3] = 60 * np.sin(2 * np.pi * 23 * t)
            self.outlet.push_chunk(chunk.astype(np.float32))
            self.n += 10
            t_next += 10 / RATE
            self._stop.wait(max(0.0, t_next - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.outlet = None


def test_scope_shows_each_channels_rms_and_the_spectrum(qtbot, tmp_path, unique_id):
    from app.console import ConsoleWindow
    from app.settings import AppSettings

    settings = AppSettings(tmp_path / "settings.ini")
    win = ConsoleWindow(settings)
    qtbot.addWidget(win)
    win.show()
    sender = SineOutlet(unique_id)
    try:
        win.connect_source(f"lsl:source_id={unique_id}?markers=none")
        qtbot.waitUntil(lambda: win.feed is not None, timeout=20000)
        # RMS beside each trace, over the last second of the display-filtered signal.
        qtbot.waitUntil(lambda: len(win.scope.rms) == 4 and win.scope.rms[0] > 10, timeout=10000)
        qtbot.wait(1500)
        np.testing.assert_allclose(win.scope.rms, [14.1, 14.1, 14.1, 42.4], rtol=0.05)
        # The labels follow twice a second (the filter's start-up transient may still be in
        # the window they last showed).
        axis = win.scope.plot.getAxis("right")

        def labels() -> list[float]:
            return [float(text) for _, text in axis._tickLevels[0]]

        qtbot.waitUntil(
            lambda: labels() == pytest.approx([14.1] * 3 + [42.4], rel=0.05), timeout=3000
        )

        assert not win.scope.spectrum.isVisible()  # off by default: no estimates made
        assert win.feed.spectrum is None
        win.display_panel.spectrum.setChecked(True)
        assert win.scope.spectrum.isVisible() and settings.get("scope/spectrum")
        qtbot.waitUntil(
            lambda: "strongest line" in win.scope.spectrum_summary.text(), timeout=10000
        )
        qtbot.wait(4500)  # a full 4-s estimate
        assert "strongest line 23.0 Hz (channel D)" in win.scope.spectrum_summary.text()
        spec = win.feed.spectrum
        k10 = int(np.argmin(np.abs(spec.freqs - 10)))
        # Channels A-C peak at 10 Hz, with the sine's power (A^2/2 per Hz over 1-Hz bins).
        assert np.argmax(spec.psd[0]) == k10
        assert spec.psd[0, k10 - 1 : k10 + 2].sum() == pytest.approx(200, rel=0.2)
    finally:
        sender.close()
        win.controller.close()
        win.close()
