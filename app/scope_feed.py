"""What the scope shows, computed off the GUI thread.

:class:`ScopeFeed` runs one consumer thread that reads new samples from a source's ring buffer,
applies the display filters with kept state (``sosfilt`` with ``zi``, so chunk boundaries leave
no steps), writes them into a display ring buffer, updates per-channel quality flags, and
prepares the next :class:`DisplayFrame` (the window, centred and peak-decimated to about the
plot's pixel width). The scope widget only hands the latest frame to its curves on a timer.
Nothing here touches the recording: the recorder reads the source's raw buffer with its own cursor.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from drivers.base import RingBuffer, Source


@dataclass
class DisplayFilter:
    """Display-only filters: a high-pass (Hz, 0 = off) and a notch (Hz, 0 = off)."""

    highpass: float = 1.0
    notch: float = 50.0

    def design(self, rate: float) -> np.ndarray | None:
        """Second-order sections for this filter at ``rate``, or ``None`` if nothing applies."""
        from scipy import signal

        nyq = rate / 2.0
        sos = []
        if 0 < self.highpass < nyq:
            sos.append(signal.butter(2, self.highpass, "highpass", fs=rate, output="sos"))
        if 0 < self.notch < nyq * 0.98:
            b, a = signal.iirnotch(self.notch, 30.0, fs=rate)
            sos.append(signal.tf2sos(b, a))
        return np.concatenate(sos) if sos else None


@dataclass
class ChannelFlags:
    """Quality flags per channel over the last second (what the console colours)."""

    flat: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    railing: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    noisy: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def label(self, i: int) -> str:
        if i < len(self.railing) and self.railing[i]:
            return "railing"
        if i < len(self.flat) and self.flat[i]:
            return "flat"
        if i < len(self.noisy) and self.noisy[i]:
            return "noisy"
        return ""


@dataclass
class FlagThresholds:
    """Where a channel becomes flat, railing or noisy (in the stream's units, e.g. uV).

    ``rail`` is the absolute raw value a saturated amplifier sits at; ``flat`` and ``noisy``
    compare the standard deviation of the display-filtered signal.
    """

    flat: float = 0.5
    noisy: float = 150.0
    rail: float = 180_000.0


#: Quality labels in drawing order (each is one curve of its own colour).
FLAG_LABELS = ("", "flat", "noisy", "railing")


@dataclass(frozen=True)
class DisplayFrame:
    """What the scope draws: times relative to the newest sample, one row per channel.

    ``y`` is centred per channel (its mean over the window removed) and peak-decimated: each
    bin of samples contributes its minimum and maximum, so spikes stay visible. ``traces``
    holds, per quality label, every channel with that label as one NaN-separated line, shifted
    down by its row (``row x scale``): the scope draws all channels with a handful of curves.
    ``rms`` is each channel's RMS over the last second of the display-filtered signal.
    """

    number: int
    x: np.ndarray  # [points], seconds, <= 0
    y: np.ndarray  # [channels x points]
    t_end: float = 0.0  # LSL time of the newest sample (x = 0)
    traces: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    rms: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class SpectrumFrame:
    """Power spectral density of every channel (Welch, on the raw signal so line noise shows).

    ``psd`` is in units² per Hz ``[channels x freqs]``; ``trace`` is all channels as one
    NaN-separated line of ``(freqs, log10 psd)`` for drawing.
    """

    number: int
    freqs: np.ndarray
    psd: np.ndarray
    seconds: float  # signal length the estimate used
    trace: tuple[np.ndarray, np.ndarray]

    def peak(self, fmin: float = 1.0, fmax: float = np.inf) -> tuple[float, int]:
        """The frequency (``fmin``..``fmax``) and channel of the strongest spectral line."""
        sel = (self.freqs >= fmin) & (self.freqs <= fmax)
        if not sel.any() or self.psd.size == 0:
            return float("nan"), -1
        ch, k = np.unravel_index(np.argmax(self.psd[:, sel]), self.psd[:, sel].shape)
        return float(self.freqs[sel][k]), int(ch)


def stacked_trace(x: np.ndarray, rows: np.ndarray, offsets: np.ndarray) -> tuple:
    """Channels ``rows`` [k x points] shifted by ``offsets`` [k], as one NaN-separated line."""
    k = len(rows)
    if k == 0:
        return np.zeros(0), np.zeros(0)
    xs = np.tile(np.append(x, np.nan), k)
    ys = np.empty((k, len(x) + 1), dtype=np.float64)
    ys[:, :-1] = rows + offsets[:, None]
    ys[:, -1] = np.nan
    return xs, ys.ravel()


def peak_decimate(
    data: np.ndarray, ts: np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bin's min and max so at most ``max_points`` points remain per channel."""
    n = len(ts)
    if n <= max_points:
        return ts, data
    k = int(np.ceil(n / (max_points // 2)))
    m = (n // k) * k
    start = n - m  # drop the oldest remainder so the newest sample is always drawn
    bins = data[start:].reshape(-1, k, data.shape[1])
    lo, hi = bins.min(axis=1), bins.max(axis=1)
    y = np.empty((2 * len(lo), data.shape[1]), dtype=data.dtype)
    y[0::2], y[1::2] = lo, hi
    tb = ts[start:].reshape(-1, k)
    x = np.empty(2 * len(tb))
    x[0::2], x[1::2] = tb[:, 0], tb[:, -1]
    return x, y


def compute_flags(raw: np.ndarray, filtered: np.ndarray, th: FlagThresholds) -> ChannelFlags:
    """Flags from the last second of raw and display-filtered samples [n x channels]."""
    if len(raw) < 2:
        n = raw.shape[1] if raw.ndim == 2 else 0
        z = np.zeros(n, bool)
        return ChannelFlags(z, z.copy(), z.copy())
    sd = filtered.std(axis=0)
    return ChannelFlags(
        flat=raw.std(axis=0) < th.flat,
        railing=np.abs(raw).max(axis=0) >= th.rail,
        noisy=sd > th.noisy,
    )


class ScopeFeed:
    """Filter a source's samples for display, on a background thread.

    Parameters
    ----------
    source
        A started source.
    seconds
        Longest time window the scope can show.
    interval
        Seconds between reads of the source buffer.
    """

    #: Seconds of raw signal each spectrum is estimated from (Welch, 1-s segments).
    spectrum_seconds = 4.0
    #: Seconds between two spectra.
    spectrum_interval = 0.5

    def __init__(
        self,
        source: Source,
        *,
        seconds: float = 30.0,
        interval: float = 0.025,
        display_filter: DisplayFilter | None = None,
        thresholds: FlagThresholds | None = None,
    ) -> None:
        info = source.open()
        self.source = source
        self.rate = info.nominal_rate or 250.0
        self.n_channels = info.n_channels
        self.interval = interval
        self.thresholds = thresholds or FlagThresholds()
        self.buffer = RingBuffer(self.n_channels, int(self.rate * seconds) + 1)
        self._raw_tail = RingBuffer(self.n_channels, int(self.rate * self.spectrum_seconds) + 1)
        self.flags = ChannelFlags()
        self.frame: DisplayFrame | None = None
        self.spectrum: SpectrumFrame | None = None
        self.spectrum_on = False
        self.spectrum_max_hz = 70.0
        self._next_spectrum = 0.0
        self.window = 5.0
        self.max_points = 2000
        self.scale = 100.0
        self.samples_dropped = 0
        self._pos = source.buffer.count if source.buffer is not None else 0
        self._lock = threading.Lock()
        self._sos: np.ndarray | None = None
        self._zi: np.ndarray | None = None
        self.set_filter(display_filter or DisplayFilter())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scope-feed", daemon=True)
        self._thread.start()

    def set_filter(self, display_filter: DisplayFilter) -> None:
        """Change the display filters; the filter state restarts (the recording is unaffected)."""
        with self._lock:
            self.display_filter = display_filter
            self._sos = display_filter.design(self.rate)
            self._zi = None

    def _filter(self, data: np.ndarray) -> np.ndarray:
        from scipy import signal

        with self._lock:
            sos = self._sos
            if sos is None:
                return data
            if self._zi is None:
                # Start from the steady state for the first sample so the trace does not begin
                # with a large step response.
                zi0 = signal.sosfilt_zi(sos)  # [sections x 2]
                self._zi = zi0[:, :, None] * data[0][None, None, :]
            out, self._zi = signal.sosfilt(sos, data, axis=0, zi=self._zi)
            return out.astype(np.float32, copy=False)

    def step(self) -> int:
        """Move new samples from the source into the display buffer; returns how many."""
        buf = self.source.buffer
        if buf is None:
            return 0
        data, ts, self._pos, lost = buf.read_since(self._pos)
        self.samples_dropped += lost
        if len(ts) == 0:
            return 0
        filtered = self._filter(data.astype(np.float64, copy=False))
        self.buffer.write(np.asarray(filtered, np.float32), ts)
        self._raw_tail.write(data, ts)
        raw, _ = self._raw_tail.latest(int(self.rate))
        shown, _ = self.buffer.latest(int(self.rate))
        self.flags = compute_flags(raw, shown, self.thresholds)
        rms = shown.std(axis=0) if len(shown) > 1 else np.zeros(self.n_channels)
        self._make_frame(rms)
        if self.spectrum_on and time.monotonic() >= self._next_spectrum:
            self._next_spectrum = time.monotonic() + self.spectrum_interval
            self._make_spectrum()
        return len(ts)

    def _make_frame(self, rms: np.ndarray) -> None:
        data, ts = self.latest(self.window)
        if len(ts) == 0:
            return
        centred = data - data.mean(axis=0, keepdims=True)
        x, y = peak_decimate(centred, ts - ts[-1], self.max_points)
        rows = np.ascontiguousarray(y.T)  # one row per channel
        offsets = -np.arange(self.n_channels, dtype=np.float64) * self.scale
        flags = self.flags
        labels = np.array([flags.label(i) for i in range(self.n_channels)])
        traces = {}
        for lab in FLAG_LABELS:
            idx = np.flatnonzero(labels == lab)
            traces[lab] = stacked_trace(x, rows[idx], offsets[idx])
        number = self.frame.number + 1 if self.frame is not None else 1
        self.frame = DisplayFrame(number, x, rows, float(ts[-1]), traces, rms)

    def _make_spectrum(self) -> None:
        from scipy import signal

        raw, _ = self._raw_tail.latest(int(self.rate * self.spectrum_seconds))
        if len(raw) < int(self.rate):
            return  # less than one Welch segment yet
        nper = int(self.rate)  # 1-s segments: 1-Hz resolution, as OpenBCI's FFT widget
        freqs, psd = signal.welch(
            raw.astype(np.float64), fs=self.rate, nperseg=nper, detrend="linear", axis=0
        )
        psd = np.ascontiguousarray(psd.T)  # [channels x freqs]
        shown = freqs <= self.spectrum_max_hz  # only what the view shows is drawn
        logp = np.log10(np.maximum(psd[:, shown], 1e-12))
        trace = stacked_trace(freqs[shown], logp, np.zeros(len(logp)))
        number = self.spectrum.number + 1 if self.spectrum is not None else 1
        self.spectrum = SpectrumFrame(number, freqs, psd, len(raw) / self.rate, trace)

    def set_view(
        self, window: float, max_points: int | None = None, scale: float | None = None
    ) -> None:
        """The time window (s) the frames cover, the points per channel they may have, and
        the distance between neighbouring channels' rows (stream units)."""
        self.window = float(window)
        if max_points:
            self.max_points = max(16, int(max_points))
        if scale:
            self.scale = float(scale)

    def latest(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """The last ``seconds`` of display-filtered samples and their LSL timestamps."""
        return self.buffer.latest(int(seconds * self.rate))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
