"""Replay a session's other streams (the voice) and videos (the face) beside its EEG, on LSL.

:class:`~drivers.replay.ReplaySource` plays one stream (the EEG) and the events.
:class:`MediaReplay` plays everything else the recording holds on the same replay clock: every
other stream with samples (``audio``, a rating, an accelerometer) and every camera of
``/videos``. An item recorded at ``t`` goes out stamped ``t + offset`` (the EEG source's
offset, plus one pass length per ``--loop`` pass) when the EEG source's schedule reaches it
(:meth:`ReplaySource.due_seconds`), so its offset to the EEG samples is the recording's
exactly, and it is released when its time comes, never early.

LSL has no image type. Each camera is published as two streams, the layout of LabRecorder's
video apps (a frame-number stream beside the images) with the images carried too:

- ``<name>-<video>-index``: type ``VideoFrameIndex``, one ``int32`` channel ``frame``, one
  sample per frame at the frame's time: the frame's index in the session (and in the MP4 of a
  BIDS export). Light enough for any recorder; with the session or the export it gives every
  frame's time.
- ``<name>-<video>``: type ``Video``, two string channels ``frame`` (the index as text) and
  ``jpeg`` (the frame's JPEG as stored, base64, since LSL strings are text), same timestamps;
  ``desc`` says ``codec`` ``jpeg``, ``encoding`` ``base64``, ``width``, ``height``,
  ``index_stream``. A client shows or records the frames live from this stream alone.

Another stream goes out as an ordinary data stream (:class:`drivers.outlets.DataOutlet`),
named ``<name>-<stream>`` with its own LSL type (``Audio`` for the voice), float32, at its
nominal rate.

With ``--loop`` only what lies within the EEG's pass (from its first sample to one sample
period after its last) is replayed, so timestamps keep increasing from pass to pass; without
it, items before the EEG's first sample go out at once and items after its last when due.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Callable

import numpy as np

from data_schema.reader import Session
from drivers.replay import ReplaySource

log = logging.getLogger(__name__)


class CompanionPlayer:
    """The schedule of one stream or video on a :class:`ReplaySource`'s replay clock.

    Parameters
    ----------
    timestamps
        The items' recorded timestamps (same clock as the source's stream).
    source
        The opened EEG source whose clock and passes to follow.
    """

    def __init__(self, timestamps: np.ndarray, source: ReplaySource) -> None:
        ts = np.asarray(timestamps, dtype=np.float64)
        self.source = source
        self.loop = source.loop
        rel = ts - source.first_timestamp
        keep = np.isfinite(rel)
        if self.loop:
            keep &= (rel >= 0) & (rel < source.pass_length)
        self.index = np.flatnonzero(keep)
        self.timestamps = ts[self.index]
        # Pace on the running maximum: a timestamp that steps back never stalls the rest.
        self._sched = np.maximum.accumulate(rel[self.index]) if self.index.size else rel[:0]
        self._pass = 0
        self._pos = 0

    @property
    def n(self) -> int:
        return int(self.index.size)

    @property
    def finished(self) -> bool:
        """Everything played (never, with ``loop``)."""
        return not self.loop and self._pos >= self.n

    def due(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(indices into the recording, replay timestamps)`` of the items due since last call."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        if not self.n:
            return out
        now = self.source.due_seconds()
        length = self.source.pass_length
        while True:
            local = now - self._pass * length
            end = int(np.searchsorted(self._sched, local, side="right"))
            if end > self._pos:
                sl = slice(self._pos, end)
                shift = self.source.offset + self._pass * length
                out.append((self.index[sl], self.timestamps[sl] + shift))
                self._pos = end
            if self._pos >= self.n and self.loop and now >= (self._pass + 1) * length:
                self._pass += 1
                self._pos = 0
                continue
            return out


class VideoOutlet:
    """The two LSL streams of one camera (see the module text)."""

    def __init__(
        self, name: str, width: int, height: int, nominal_rate: float, source_id: str
    ) -> None:
        from drivers.outlets import _pylsl

        pylsl = _pylsl()
        rate = nominal_rate if nominal_rate > 0 else pylsl.IRREGULAR_RATE
        self.name = name
        self.index_name = f"{name}-index"
        index_info = pylsl.StreamInfo(
            self.index_name, "VideoFrameIndex", 1, rate, pylsl.cf_int32, f"{source_id}-index"
        )
        frames_info = pylsl.StreamInfo(name, "Video", 2, rate, pylsl.cf_string, source_id)
        for info, labels in ((index_info, ("frame",)), (frames_info, ("frame", "jpeg"))):
            desc = info.desc()
            desc.append_child_value("manufacturer", "recall-lab")
            desc.append_child_value("codec", "jpeg")
            desc.append_child_value("encoding", "base64")
            desc.append_child_value("width", str(int(width)))
            desc.append_child_value("height", str(int(height)))
            desc.append_child_value("index_stream", self.index_name)
            desc.append_child_value("frames_stream", name)
            channels = desc.append_child("channels")
            for label in labels:
                ch = channels.append_child("channel")
                ch.append_child_value("label", label)
                ch.append_child_value("type", "VideoFrame" if label == "frame" else "JPEG")
        self._index = pylsl.StreamOutlet(index_info)
        self._frames = pylsl.StreamOutlet(frames_info, chunk_size=1)
        self._lock = threading.Lock()
        self.n_pushed = 0

    def push_frames(self, indices: np.ndarray, jpegs: list[bytes], timestamps: np.ndarray) -> None:
        with self._lock:
            if self._frames is None:
                return
            for i, data, t in zip(indices, jpegs, timestamps):
                text = base64.b64encode(data).decode("ascii")
                self._index.push_sample([int(i)], float(t))
                self._frames.push_sample([str(int(i)), text], float(t))
                self.n_pushed += 1

    def close(self, linger: float = 0.3) -> None:
        import time

        with self._lock:
            outlets, self._index, self._frames = (self._index, self._frames), None, None
        if outlets[0] is not None and linger > 0:
            if any(o.have_consumers() for o in outlets):
                time.sleep(linger)
        del outlets


class MediaReplay:
    """Publish the recording's other streams and videos beside a replayed EEG on LSL.

    Parameters
    ----------
    source
        The opened :class:`ReplaySource` (its clock, offset and passes are followed).
    name
        Prefix of the LSL stream names (the EEG stream's name).
    say
        Where to report what is published (one line per stream).
    """

    def __init__(
        self, source: ReplaySource, name: str, say: Callable[[str], None] | None = None
    ) -> None:
        from drivers.outlets import DataOutlet

        say = say or (lambda _msg: None)
        session: Session = source.session
        self.source = source
        self._streams: list[tuple[str, CompanionPlayer, DataOutlet]] = []
        self._videos: list[tuple[str, CompanionPlayer, VideoOutlet]] = []
        self.n_samples = 0
        self.n_frames = 0
        tag = uuid.uuid4().hex[:8]
        try:
            for sname, stream in session.streams.items():
                if sname == source.stream_name or not stream.n_samples:
                    continue
                if not stream.info.n_channels:
                    continue
                player = CompanionPlayer(stream.timestamps, source)
                if not player.n:
                    continue
                info = stream.info
                lsl_name = f"{name}-{sname}"
                outlet = DataOutlet(info, source_id=f"recall-lab-{tag}-{sname}", name=lsl_name)
                self._streams.append((sname, player, outlet))
                say(
                    f"publishing LSL stream {lsl_name!r} ({info.stream_type or 'misc'}, "
                    f"{info.n_channels} channels, {info.nominal_rate:g} Hz)"
                )
            for vname, video in session.videos.items():
                player = CompanionPlayer(video.timestamps, source)
                if not player.n:
                    continue
                lsl_name = f"{name}-{vname}"
                outlet = VideoOutlet(
                    lsl_name,
                    video.width,
                    video.height,
                    video.nominal_rate,
                    f"recall-lab-{tag}-video-{vname}",
                )
                self._videos.append((vname, player, outlet))
                say(
                    f"publishing LSL streams {lsl_name!r} (Video, JPEG frames in base64, "
                    f"{video.width}x{video.height}, {video.nominal_rate:g} fps) and "
                    f"{outlet.index_name!r} (frame indices)"
                )
        except BaseException:
            self.close()
            raise

    @property
    def empty(self) -> bool:
        return not self._streams and not self._videos

    @property
    def finished(self) -> bool:
        players = [p for _, p, _ in self._streams] + [p for _, p, _ in self._videos]
        return all(p.finished for p in players)

    def poll(self) -> None:
        """Push what is due now (call often: every 10-50 ms)."""
        session = self.source.session
        for sname, player, outlet in self._streams:
            data = session.streams[sname].data
            for idx, ts in player.due():
                outlet.push_chunk(data[idx], ts)
                self.n_samples += len(ts)
        for vname, player, outlet in self._videos:
            video = session.videos[vname]
            for idx, ts in player.due():
                # Contiguous runs of frames are read in one pass of the file.
                for start in range(0, len(idx), 64):
                    part = idx[start : start + 64]
                    jpegs = video.jpegs(int(part[0]), int(part[-1]) + 1)
                    jpegs = [jpegs[int(i - part[0])] for i in part]
                    outlet.push_frames(part, jpegs, ts[start : start + 64])
                    self.n_frames += len(part)

    def close(self) -> None:
        for _, _, outlet in self._streams:
            outlet.close()
        for _, _, outlet in self._videos:
            outlet.close()
