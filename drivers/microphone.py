"""The participant's voice: a microphone recorded as an ordinary stream on the LSL clock.

PortAudio (through sounddevice) calls back on its own thread with each block of samples and the
time its first sample was captured (``inputBufferAdcTime``, on the stream's clock). The callback
only copies the block into a queue; the source's thread (:class:`drivers.base.Source`) takes
the blocks, maps the capture times onto the LSL clock with the offset measured when the stream
started (stored as ``clock_mapping``), places the samples of a block at the nominal rate from
its first one, and smooths the result like the other regular sources
(:class:`drivers.clock.Dejitter`). A device that disappears leaves a gap (``gap_start`` /
``gap_end``); the source tries to open it again every few seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from data_schema.errors import SourceError
from data_schema.types import Event, StreamInfo
from drivers.base import Source

log = logging.getLogger(__name__)

HINT = "`recall-lab boards --microphones` lists devices"


def parse_microphone(spec: str, **source_options: Any) -> MicrophoneSource:
    """``DEVICE[?rate=16000&channels=1]`` (``default``, an index or a name) as a source."""
    from urllib.parse import parse_qsl

    device, _, query = (spec or "").strip().partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - {"rate", "channels"})
    if unknown:
        raise SourceError(f"microphone {spec!r}: unknown option {unknown[0]!r}; use rate, channels")
    return MicrophoneSource(device or "default", **params, **source_options)


def list_microphones(*, rescan: bool = False) -> list[dict[str, Any]]:
    """PortAudio's input devices: ``[{"spec", "name", "hostapi", "channels", "rate",
    "default"}]``; ``spec`` is what ``--microphone`` takes (the device's name, or its index
    where two share a name).

    Listing initialises PortAudio, which probes the sound system (ALSA can take a second):
    call it off the GUI thread. PortAudio keeps the devices it found then; ``rescan``
    restarts it to see devices plugged in since, which stops every open PortAudio stream:
    only when none is open. Raises :class:`SourceError` when PortAudio is missing.
    """
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise SourceError(
            f"cannot list microphones: {exc} (install libportaudio2 and the capture extra)"
        ) from None
    try:
        if rescan:
            sd._terminate()  # sounddevice's own way to refresh PortAudio's device list
            sd._initialize()
        default_in = sd.default.device[0]
        devices = sd.query_devices()
        apis = [h["name"] for h in sd.query_hostapis()]
    except Exception as exc:  # PortAudioError: the sound system could not be probed
        raise SourceError(f"cannot list microphones: {exc}") from None
    inputs = [(i, d) for i, d in enumerate(devices) if int(d.get("max_input_channels", 0)) >= 1]
    names = [str(d["name"]) for _, d in inputs]
    out = []
    for i, d in inputs:
        # The name survives unplugging and replugging (the index may not); the index where
        # two devices share a name.
        name = str(d["name"])
        out.append(
            {
                "spec": name if names.count(name) == 1 and not name.isdigit() else str(i),
                "name": str(d["name"]),
                "hostapi": apis[d["hostapi"]] if 0 <= d["hostapi"] < len(apis) else "",
                "channels": int(d["max_input_channels"]),
                "rate": float(d["default_samplerate"]),
                "default": i == default_in,
            }
        )
    return out


class MicrophoneSource(Source):
    """A sound input device as a stream of float32 samples, full scale -1..1 (unit ``a.u.``).

    Parameters
    ----------
    device
        ``default``, a device index or (part of) a device name as sounddevice knows them.
    rate
        Samples per second (16000 is plenty for speech).
    channels
        Input channels; named ``mic`` for one, ``mic1``..``micN`` otherwise.
    name
        Stream name (``audio``).
    max_queue_seconds
        Audio the callback may queue for a source thread that is held back (a slow disk);
        older blocks are dropped beyond it and counted as ``samples_lost``.
    source_options
        :class:`drivers.base.Source`'s (``pull_interval``, ``stall_timeout``...).
    """

    #: Seconds between attempts to open a device that went away.
    reopen_interval = 2.0

    def __init__(
        self,
        device: str | int = "default",
        rate: int = 16000,
        channels: int = 1,
        *,
        name: str = "audio",
        max_queue_seconds: float = 30.0,
        **source_options: Any,
    ) -> None:
        super().__init__(**source_options)
        self.device = str(device)
        try:
            self.rate = int(rate)
            self.channels = int(channels)
        except (TypeError, ValueError):
            raise SourceError(
                f"microphone rate={rate!r}, channels={channels!r}: give whole numbers"
            ) from None
        if not 1000 <= self.rate <= 384000 or not 1 <= self.channels <= 64:
            raise SourceError(
                f"microphone rate {self.rate} Hz, {self.channels} channel(s): give 1000-384000 Hz "
                "and 1-64 channels"
            )
        self.name = name
        self.max_queue = int(max_queue_seconds * self.rate)
        # (samples, capture time of the first on PortAudio's clock, starts a new line): a
        # block after a stretch left out is not a hole in the recording.
        self._blocks: deque[tuple[np.ndarray, float, bool]] = deque()
        # The last seconds left out (not recording), so a start dated a moment ago loses
        # nothing; never stored unless a start reaches back into them.
        self._preroll: deque[tuple[np.ndarray, float]] = deque()
        self._preroll_n = 0
        self._cut: float | None = None  # PortAudio time of the last switch (set_recording)
        self._fresh = False  # the next queued block starts a new line
        self._queued = 0
        self._qlock = threading.Lock()
        self._overflows = 0
        self._next_adc: float | None = None  # capture time the next block should start at
        self.recording = True  # False: the sound passes unstored (set_recording)
        self.preroll_seconds = 2.0
        self._lost = 0
        self._stream = None
        self._offset = 0.0
        self._dejitter = None
        self._broken_at: float | None = None
        self._last_reopen = 0.0
        self._mapping: dict[str, Any] = {"clock": "lsl"}

    # ------------------------------------------------------------------ device
    def _device_arg(self) -> int | str | None:
        if self.device in ("", "default"):
            return None
        return int(self.device) if self.device.isdigit() else self.device

    def _open_stream(self):
        import sounddevice as sd

        dev = self._device_arg()
        sd.check_input_settings(
            device=dev, channels=self.channels, samplerate=self.rate, dtype="float32"
        )
        stream = sd.InputStream(
            device=dev,
            channels=self.channels,
            samplerate=self.rate,
            dtype="float32",
            callback=self._callback,
            finished_callback=self._on_finished,
        )
        stream.start()
        return stream

    def _measure_offset(self, stream) -> tuple[float, float]:
        """``lsl - stream time``: median over readings bracketed by two LSL readings."""
        from drivers.clock import local_clock

        local_clock()  # the first call loads liblsl: keep it out of the readings
        offsets, widths = [], []
        for _ in range(15):
            a = local_clock()
            s = stream.time
            b = local_clock()
            offsets.append((a + b) / 2 - s)
            widths.append(b - a)
        return float(np.median(offsets)), float(np.max(widths))

    def _connect(self) -> StreamInfo:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:  # OSError: no PortAudio library
            raise SourceError(
                f"no microphone {self.device!r}: sounddevice/PortAudio is not available ({exc}); "
                "pip install 'recall-lab[capture]' and install libportaudio2"
            ) from None
        try:
            self._stream = self._open_stream()
            info = sd.query_devices(self._stream.device)
        except (ValueError, sd.PortAudioError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(f"no microphone {self.device!r}: {detail}; {HINT}") from None
        from drivers.clock import Dejitter

        self._offset, width = self._measure_offset(self._stream)
        self._dejitter = Dejitter(self.rate)
        self._mapping = {
            "clock": "lsl",
            "from": "portaudio stream time (inputBufferAdcTime)",
            "method": "lsl = capture time of a block's first sample + offset, then + i / rate, "
            "dejittered",
            "offset": self._offset,
            "uncertainty": width,
        }
        names = ["mic"] if self.channels == 1 else [f"mic{i + 1}" for i in range(self.channels)]
        return StreamInfo(
            self.name,
            names,
            ["misc"] * self.channels,
            ["a.u."] * self.channels,
            float(self.rate),
            "Audio",
            f"microphone:{self.device}",
            description={
                "device": info.get("name"),
                "hostapi": sd.query_hostapis(info["hostapi"])["name"],
                "latency": self._stream.latency,
                "full_scale": 1.0,
                "dtype": "float32",
            },
        )

    def start(self) -> None:
        # The device was opened before the session file existed (to fail early): what it
        # captured until now precedes the recording and is not kept.
        if self._thread is None:
            with self._qlock:
                self._blocks.clear()
                self._queued = 0
                self._preroll.clear()
                self._preroll_n = 0
                self._cut = None
        super().start()

    @property
    def clock_mapping(self) -> dict[str, object]:
        return dict(self._mapping)

    # ------------------------------------------------------------------ PortAudio's thread
    def set_recording(self, on: bool, at: float | None = None) -> None:
        """Keep the sound (``True``, the default) or let it pass unstored (the protocol's
        ``capture`` says the microphone must not record now); the device stays open.

        ``at``: the LSL time the switch takes effect (the phase boundary), usually a moment
        ago. Sound is kept or left out by its own capture time, not by when this is called:
        what was captured before a stop but not yet taken is kept (the participant's last
        words), and a start reaches back into the last :attr:`preroll_seconds` of sound left
        out. Sound already taken by the recorder stays stored. Without ``at``: from now.
        """
        on = bool(on)
        with self._qlock:
            if on == self.recording:
                return
            self.recording = on
            if at is None:
                self._cut = None
                self._preroll.clear()
                self._preroll_n = 0
                self._fresh = self._fresh or on
                return
            cut = float(at) - self._offset  # on PortAudio's clock
            self._cut = cut
            if on:  # the part of the pre-roll from ``at`` on is recorded after all
                self._fresh = True
                for block, t in self._preroll:
                    _, after = self._split(block, t, cut)
                    if after is not None:
                        self._enqueue(*after)
                self._preroll.clear()
                self._preroll_n = 0
            else:  # queued sound from ``at`` on was not to be recorded
                kept: deque[tuple[np.ndarray, float, bool]] = deque()
                for block, t, fresh in self._blocks:
                    before, after = self._split(block, t, cut)
                    if before is not None:
                        kept.append((*before, fresh))
                    if after is not None:
                        self._keep_out(*after)
                self._blocks = kept
                self._queued = sum(len(b) for b, _, _ in kept)

    def _split(self, block: np.ndarray, t: float, cut: float):
        """``block`` (captured from ``t``) before and from ``cut``: two ``(samples, t)`` or
        ``None``."""
        # The samples captured before ``cut``: i / rate < cut - t.
        n = min(len(block), max(0, math.ceil((cut - t) * self.rate - 1e-6)))
        before = (block[:n], t) if n else None
        after = (block[n:], t + n / self.rate) if n < len(block) else None
        return before, after

    def _enqueue(self, block: np.ndarray, t: float) -> None:
        self._blocks.append((block, t, self._fresh))
        self._fresh = False
        self._queued += len(block)
        while self._queued > self.max_queue and len(self._blocks) > 1:
            old, _, _ = self._blocks.popleft()
            self._queued -= len(old)
            self._lost += len(old)

    def _keep_out(self, block: np.ndarray, t: float) -> None:
        self._preroll.append((block, t))
        self._preroll_n += len(block)
        limit = self.preroll_seconds * self.rate
        while self._preroll and self._preroll_n - len(self._preroll[0][0]) >= limit:
            self._preroll_n -= len(self._preroll.popleft()[0])

    def _callback(self, indata, frames, time_info, status) -> None:
        # Only a copy and an append here: this runs on PortAudio's real-time thread.
        t = time_info.inputBufferAdcTime or (time_info.currentTime - frames / self.rate)
        block = indata.copy()
        with self._qlock:
            parts = [(block, t, self.recording)]
            if self._cut is not None and t < self._cut:
                # Captured (partly) before the last switch: that part follows the state before.
                before, after = self._split(block, t, self._cut)
                parts = []
                if before is not None:
                    parts.append((*before, not self.recording))
                if after is not None:
                    parts.append((*after, self.recording))
            for b, bt, keep in parts:
                if keep:
                    self._enqueue(b, bt)
                else:
                    self._fresh = True
                    self._keep_out(b, bt)
            if status.input_overflow:
                self._overflows += 1

    def _on_finished(self) -> None:
        self._broken_at = time.monotonic()

    # ------------------------------------------------------------------ source thread
    def _pull(self, max_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        with self._qlock:
            lost, self._lost = self._lost, 0
            overflows, self._overflows = self._overflows, 0
            taken: list[tuple[np.ndarray, float, bool]] = []
            n = 0
            while self._blocks and n + len(self._blocks[0][0]) <= max_samples:
                block = self._blocks.popleft()
                taken.append(block)
                n += len(block[0])
            self._queued -= n
        from drivers.clock import local_clock

        if lost:
            self.emit(Event(local_clock(), "recorder", "samples_lost", f"{self.info.name}:{lost}"))
        if not taken:
            self._maybe_reopen()
            return None
        period = 1.0 / self.rate
        # Blocks PortAudio dropped (an input overflow: the device's buffer was full) show as a
        # jump in the blocks' capture times: counted as lost samples, and the timestamps start
        # a new line there instead of being smoothed across the hole.
        stamped: list[np.ndarray] = []
        run: list[np.ndarray] = []
        for b, t, fresh in taken:
            if fresh:
                # After a stretch the protocol left out: a new line, not a hole.
                self._next_adc = None
                if run:
                    stamped.append(self._dejitter(np.concatenate(run)))
                    run = []
                self._dejitter.reset()
            if self._next_adc is not None:
                missing = round((t - self._next_adc) * self.rate)
                if missing >= max(2, len(b) // 2):
                    at = t + self._offset
                    self.emit(Event(at, "recorder", "samples_lost", f"{self.info.name}:{missing}"))
                    if run:
                        stamped.append(self._dejitter(np.concatenate(run)))
                        run = []
                    self._dejitter.reset()
            self._next_adc = t + len(b) * period
            run.append(t + self._offset + np.arange(len(b)) * period)
        stamped.append(self._dejitter(np.concatenate(run)))
        if overflows:  # PortAudio's own flag, also when the capture times show no hole
            value = f"{self.info.name}:{overflows}"
            self.emit(Event(local_clock(), "microphone", "input_overflow", value))
        return np.concatenate([b for b, _, _ in taken]), np.concatenate(stamped)

    def _maybe_reopen(self) -> None:
        """A stream PortAudio ended (device unplugged): try to open the device again."""
        stream = self._stream
        if stream is not None and stream.active and self._broken_at is None:
            return
        now = time.monotonic()
        if now - self._last_reopen < self.reopen_interval:
            return
        self._last_reopen = now
        self._close_stream()
        try:
            self._stream = self._open_stream()
            self._offset, _ = self._measure_offset(self._stream)
            self._broken_at = None
            self._dejitter.reset()
            self._next_adc = None
            log.warning("%s: microphone %r open again", self.info.name, self.device)
        except Exception as exc:
            log.info("%s: microphone %r still unavailable: %s", self.info.name, self.device, exc)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort()
            stream.close()
        except Exception as exc:
            log.debug("closing microphone: %s", exc)

    def _disconnect(self) -> None:
        self._close_stream()
