"""Play a recording back as if it were a live amplifier.

:class:`ReplaySource` plays a recall-lab session or any recording
:func:`data_schema.recordings.load_recording` reads (XDF, EDF, BDF, BrainVision, FIF, EEGLAB,
OpenBCI GUI text), with its events, at real-time speed, ``N`` times faster or as fast as the
readers can safely keep up.

Timing. The recording's timestamps are moved onto the current LSL clock by one offset,
``lsl = original + offset`` (stored in :attr:`clock_mapping`), so the relative timing of
samples and events is exactly the recording's, at every speed. Samples are released when the
LSL clock passes ``start + (t - t_first) / speed``: the schedule is computed from the start,
not by sleeping per chunk, so no drift accumulates. The schedule (and the offset) is fixed
when the source is opened, because the recorder stores the clock mapping before starting it;
start soon after opening. At ``speed != 1`` the timestamps therefore
run ahead of (or behind) the wall clock; they keep describing the recording.

Every sample is delivered exactly once, in order. "As fast as possible" (``speed=0``) is
capped at :data:`MAX_SPEED_PER_BUFFER_SECOND` times the ring buffer's length in real-time
speed, so a reader that polls every 50 ms never falls a full buffer behind.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data_schema.errors import SourceError
from data_schema.reader import Session, Stream
from data_schema.types import Event, StreamInfo
from drivers.base import Source
from drivers.clock import local_clock

log = logging.getLogger(__name__)

#: ``speed=0`` plays at ``MAX_SPEED_PER_BUFFER_SECOND * buffer_seconds`` times real time:
#: one 50 ms poll then sees at most a quarter of the ring buffer.
MAX_SPEED_PER_BUFFER_SECOND = 5.0

#: Seconds between ``open()`` and the first sample, so the first chunk is not already late.
LEAD_TIME = 0.05


class ReplaySource(Source):
    """A recording played back as a live source, with its events.

    Parameters
    ----------
    path
        A session ``.h5`` or a foreign recording.
    speed
        ``1`` for real time, ``N`` for N times faster (or slower below 1), ``0`` for as fast as
        possible.
    loop
        Start again at the end (timestamps keep increasing, one sample period after the
        previous pass's last sample).
    stream
        Which stream of the recording to play (``eeg`` by default).
    name
        Stream name this source reports (defaults to ``stream``).
    chunk_seconds
        Largest chunk handed to the buffer at once, in recording seconds.
    **kwargs
        :class:`drivers.base.Source` options (``buffer_seconds``, ``stall_timeout``).
    """

    #: A recording is not a live amplifier: a larger buffer keeps "as fast as possible" fast
    #: (5 x its seconds; 150 x real time for 30 s of 64 channels at 1 kHz).
    max_buffer_bytes = 32 * 2**20

    def __init__(
        self,
        path: str | Path,
        speed: float = 1.0,
        loop: bool = False,
        *,
        stream: str = "eeg",
        name: str | None = None,
        chunk_seconds: float = 0.05,
        **kwargs: float,
    ) -> None:
        super().__init__(**kwargs)
        if not np.isfinite(speed) or speed < 0:
            raise SourceError(f"replay speed {speed!r}: give a positive number, or 0 / max")
        self.path = Path(path)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.stream_name = stream
        self.name = name or stream
        self.chunk_seconds = float(chunk_seconds)
        self.session: Session | None = None
        self._offset = 0.0
        self._t_start = 0.0
        self._pass = 0
        self._pos = 0
        self._ev_pos = 0

    # ---------------------------------------------------------------- timing
    @property
    def effective_speed(self) -> float:
        """The speed samples are released at (``speed=0`` resolved to its cap)."""
        if self.speed > 0:
            return self.speed
        seconds = self.buffer_seconds
        if self.buffer is not None and self.info is not None and self.info.nominal_rate:
            seconds = self.buffer.capacity / self.info.nominal_rate  # capped by memory
        return MAX_SPEED_PER_BUFFER_SECOND * seconds

    @property
    def clock_mapping(self) -> dict[str, object]:
        return {
            "clock": "lsl",
            "from": "replay",
            "method": "lsl = original + offset",
            "offset": self._offset,
            "speed": self.speed,
            "loop": self.loop,
            "file": self.path.name,
        }

    @property
    def duration(self) -> float:
        """Recording seconds from the first to the last sample."""
        s = self._stream
        return float(s.timestamps[-1] - s.timestamps[0]) if s.n_samples else 0.0

    # ------------------------------------------------------- the replay clock, for companions
    @property
    def first_timestamp(self) -> float:
        """The recording's timestamp of the replayed stream's first sample."""
        return float(self._stream.timestamps[0])

    @property
    def offset(self) -> float:
        """``lsl = original + offset`` in the first pass (fixed when the source is opened)."""
        return self._offset

    @property
    def pass_length(self) -> float:
        """Recording seconds from one pass's first sample to the next pass's (``--loop``)."""
        return self.duration + self._period

    def due_seconds(self) -> float:
        """Recording seconds, counted from the first sample of the first pass, that are due now.

        Other streams and videos of the recording (:mod:`drivers.replay_video`) are released
        on this same schedule, so they keep their recorded offsets to the samples.
        """
        return (local_clock() - self._t_start) * self.effective_speed

    @property
    def progress(self) -> tuple[float, float]:
        """``(seconds played in the current pass, recording duration)``."""
        s = self._stream
        if self.session is None or not s.n_samples:
            return 0.0, 0.0
        i = min(self._pos, s.n_samples) - 1
        return (float(s.timestamps[i] - s.timestamps[0]) if i >= 0 else 0.0), self.duration

    # ---------------------------------------------------------------- Source API
    def _connect(self) -> StreamInfo:
        from data_schema.recordings import load_recording

        session = load_recording(self.path)
        if self.stream_name not in session.streams:
            have = ", ".join(session.streams) or "none"
            raise SourceError(
                f"{self.path.name} has no stream {self.stream_name!r} to replay (streams: {have})"
            )
        stream = session.streams[self.stream_name]
        if stream.n_samples == 0:
            raise SourceError(f"{self.path.name}: stream {self.stream_name!r} holds no samples")
        ts = stream.timestamps
        bad = ~np.isfinite(ts)
        if bad.any():
            # The schedule is built from the timestamps: a NaN one would never come due.
            raise SourceError(
                f"{self.path.name}: stream {self.stream_name!r} has {int(bad.sum())} timestamps "
                f"that are not finite (first at row {int(np.argmax(bad))}), so it cannot be "
                f"played in time; 'recall-lab validate {self.path}' lists the problems"
            )
        data = stream.data
        if data.size and not np.isfinite(data).any():
            # Nothing to replay: a recording of it would hold no signal at all.
            raise SourceError(
                f"{self.path.name}: stream {self.stream_name!r} holds no finite sample (every "
                f"value is NaN or infinite); 'recall-lab validate {self.path}' lists the problems"
            )
        self.session = session
        # Pace on the running maximum so a timestamp that steps back never stalls the schedule.
        self._sched = np.maximum.accumulate(ts - ts[0])
        # Period used between loop passes: the nominal one, else the mean measured one.
        if stream.info.nominal_rate > 0:
            self._period = 1.0 / stream.info.nominal_rate
        else:
            self._period = self.duration / max(1, stream.n_samples - 1) if self.duration else 0.0
        self._events = sorted(session.events, key=lambda e: e.timestamp)
        self._ev_rel = np.array([e.timestamp - ts[0] for e in self._events], dtype=np.float64)
        self._t_start = local_clock() + LEAD_TIME
        self._offset = self._t_start - float(ts[0])
        self._pass, self._pos, self._ev_pos = 0, 0, 0
        info = stream.info
        return StreamInfo(
            name=self.name,
            channel_names=list(info.channel_names),
            channel_types=list(info.channel_types),
            units=list(info.units),
            nominal_rate=info.nominal_rate,
            stream_type=info.stream_type or "EEG",
            source=f"replay:{self.path.name}",
            description={
                **info.description,
                "replay_of": self.path.name,
                "original_source": info.source,
            },
        )

    @property
    def _stream(self) -> Stream:
        return self.session.streams[self.stream_name]

    def _pull(self, max_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        stream = self._stream
        n = stream.n_samples
        # Recording seconds (relative to the first sample of this pass) that are now due.
        pass_len = self.duration + self._period
        due = (local_clock() - self._t_start) * self.effective_speed - self._pass * pass_len
        end = int(np.searchsorted(self._sched, due, side="right"))
        rate = stream.info.nominal_rate or (n / self.duration if self.duration else n)
        # A chunk covers at most chunk_seconds (or the pull interval, else replay would fall
        # behind real time) and never more than fits beside what the recorder holds.
        span = max(self.chunk_seconds, 2 * self.pull_interval)
        cap = min(max(1, int(span * rate * self.effective_speed)), max_samples)
        end = min(end, self._pos + cap)
        shift = self._offset + self._pass * pass_len
        # Events never run ahead of the samples delivered so far (the chunk cap may hold
        # samples back); those before the first sample come with it.
        self._emit_due(min(due, self._sched[end - 1] if end > 0 else 0.0), shift)
        if end <= self._pos:
            return self._end_of_pass(n, shift)
        a, self._pos = self._pos, end
        return stream.data[a:end], stream.timestamps[a:end] + shift

    def _emit_due(self, due: float, shift: float) -> None:
        """Emit events whose time has come (those before the first sample come at once)."""
        k = int(np.searchsorted(self._ev_rel, due, side="right"))
        for e in self._events[self._ev_pos : k]:
            self.emit(Event(e.timestamp + shift, e.source, e.label, e.value, e.duration))
        self._ev_pos = max(self._ev_pos, k)

    def _end_of_pass(self, n: int, shift: float) -> None:
        if self._pos < n:
            return None
        # Events after the last sample come when their time is due, then the pass ends.
        due = (local_clock() - self._t_start) * self.effective_speed - self._pass * (
            self.duration + self._period
        )
        self._emit_due(due, shift)
        if self._ev_pos < len(self._events):
            return None
        if self.loop:
            self._pass += 1
            self._pos, self._ev_pos = 0, 0
            return None
        self.finish()
        return None
