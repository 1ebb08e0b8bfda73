"""The participant's face: a camera (V4L2) or a video file played as if live, as JPEG frames.

A :class:`CameraSource` is not a ring-buffer :class:`~drivers.base.Source`: its frames vary in
size. One capture thread reads frames through PyAV (FFmpeg's libavdevice for V4L2 cameras,
libavformat for files), stamps each on the LSL clock, JPEG-encodes it (Pillow) on that thread
and queues ``(bytes, timestamp)``; :meth:`CameraSource.take` hands the recorder everything
queued, once per flush of the session file. The queue is bounded (``max_queue_seconds`` of
frames); a recorder that falls further behind loses the oldest frames, and they are counted
(:attr:`CameraSource.dropped`) and marked in the file (``samples_lost``). A camera that stops
delivering for ``stall_timeout`` seconds is marked with ``gap_start`` / ``gap_end`` events.

Timestamps:

- ``file:PATH``: frames are released at real time, paced by their presentation times (like
  BrainFlow's playback board for EEG); a frame's timestamp is the LSL time it was due, so the
  spacing is the file's own.
- V4L2: the driver's buffer timestamp (``CLOCK_MONOTONIC`` on Linux, taken when the frame was
  captured), mapped onto the LSL clock with a measured offset; a driver that gives no such
  timestamp falls back to the LSL time the frame was read. ``clock_mapping`` says which.

Device specifications: ``/dev/video0``, ``0`` (the same), or ``file:PATH``, each optionally
followed by ``?width=640&height=480&fps=30&quality=85&loop=true``.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from data_schema.errors import SourceError
from data_schema.types import Event, VideoInfo
from drivers.ring_buffer import EventLog

log = logging.getLogger(__name__)

OPTIONS = ("width", "height", "fps", "quality", "name", "loop")
FORMS = "/dev/videoN, N, or file:VIDEO[?width=..&height=..&fps=..&quality=..&loop=true]"


def parse_camera(spec: str, **overrides: Any) -> CameraSource:
    """Build (but do not open) the camera ``spec`` names (see the module docstring)."""
    spec = (spec or "").strip()
    target, _, query = spec.partition("?")
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - set(OPTIONS))
    if unknown:
        raise SourceError(
            f"camera {spec!r}: unknown option {unknown[0]!r}; use {', '.join(OPTIONS)}"
        )
    if not target:
        raise SourceError(f"camera: give a device: {FORMS}")
    params.update(overrides)
    return CameraSource(target, **params)


#: Where Linux lists its video devices (one folder per /dev/videoN).
V4L2_SYSFS = Path("/sys/class/video4linux")


def list_cameras(sysfs: Path | str = V4L2_SYSFS) -> list[dict[str, str]]:
    """The V4L2 video capture devices present: ``[{"spec": "/dev/video0", "name": ...}]``.

    Read from sysfs without opening any device (a camera in use elsewhere is listed too).
    A UVC camera also creates a metadata node (``index`` 1, no frames): only the first node of
    each device (``index`` 0) is listed. Empty where there is no sysfs (not Linux).
    """
    root = Path(sysfs)
    found = []
    try:
        entries = sorted(root.glob("video*"), key=lambda p: (len(p.name), p.name))
    except OSError:
        return []
    for entry in entries:
        try:
            index = (entry / "index").read_text().strip()
            name = (entry / "name").read_text().strip()
        except OSError:
            continue
        if index not in ("", "0"):
            continue
        found.append({"spec": f"/dev/{entry.name}", "name": name})
    return found


def _number(name: str, value: Any, kind: type, lo: float, hi: float) -> Any:
    try:
        v = kind(value)
    except (TypeError, ValueError):
        v = None
    if v is None or not lo <= v <= hi:
        raise SourceError(f"camera {name}={value}: give a number from {lo:g} to {hi:g}")
    return v


class CameraSource:
    """Frames of a camera or a video file, JPEG-encoded and stamped on the LSL clock.

    Parameters
    ----------
    device
        ``/dev/videoN``, ``N`` (a V4L2 index) or ``file:PATH``.
    width, height
        Frame size asked of the camera (V4L2) or scaled to (files); default: as delivered.
    fps
        Frame rate asked of the camera (V4L2 only; a file keeps its own).
    quality
        JPEG quality 1-95 (default 85).
    name
        Stream name in the session file (``video``).
    loop
        Files only: start again at the end (default: the video ends, the recording goes on).
    stall_timeout
        Seconds without a frame after which a ``gap_start`` event is emitted.
    max_queue_seconds
        Frames kept for a recorder that has not taken them (bounded memory).
    """

    def __init__(
        self,
        device: str,
        *,
        width: int | str | None = None,
        height: int | str | None = None,
        fps: float | str | None = None,
        quality: int | str = 85,
        name: str = "video",
        loop: bool | str = False,
        stall_timeout: float = 2.0,
        max_queue_seconds: float = 10.0,
    ) -> None:
        self.device = str(device)
        self.width = None if width in (None, "") else _number("width", width, int, 16, 8192)
        self.height = None if height in (None, "") else _number("height", height, int, 16, 8192)
        self.fps = None if fps in (None, "") else _number("fps", fps, float, 0.1, 1000)
        self.quality = _number("quality", quality, int, 1, 95)
        if isinstance(loop, str):
            if loop.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise SourceError(f"camera loop={loop!r}: use true or false")
            loop = loop.lower() in ("true", "1", "yes")
        self.loop = bool(loop)
        self.name = name
        self.stall_timeout = float(stall_timeout)
        self.max_queue_seconds = float(max_queue_seconds)
        self.is_file = self.device.startswith("file:")
        self.info: VideoInfo | None = None
        self.events = EventLog()
        self.frames = 0  # captured and encoded
        self.dropped = 0  # left out of the bounded queue
        self.error: SourceError | None = None
        self._clock: dict[str, Any] = {"clock": "lsl"}
        self._container = None
        self._stream = None
        self._first = None  # a frame read by open() (V4L2), delivered first
        self._queue: deque[tuple[bytes, float]] = deque()
        # Frames left out lately (not recording), for a start dated a moment ago.
        self._preroll: deque[tuple[Any, float]] = deque()
        self.preroll_seconds = 1.0
        self._cut: float | None = None  # LSL time of the last switch (set_recording)
        #: The newest frame queued for the file (JPEG bytes), for a live preview: replaced
        #: by one reference assignment per frame, so another thread may read it at any time.
        self.latest: bytes | None = None
        self.recording = True  # False: frames pass unstored (set_recording)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self._last_frame_wall: float | None = None
        self._last_ts: float | None = None
        self._stalled_since: float | None = None
        self._reported_drops = 0

    # ------------------------------------------------------------------ opening
    @property
    def clock_mapping(self) -> dict[str, Any]:
        """How frame timestamps were put on the LSL clock (stored with the video)."""
        return dict(self._clock)

    @property
    def finished(self) -> bool:
        """True once a video file played to its end (``loop`` off)."""
        return self._finished

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def open(self) -> VideoInfo:
        """Open the device or file; raise a one-line :class:`SourceError` if it cannot be."""
        if self.info is not None:
            return self.info
        try:
            import av
        except ImportError:
            raise SourceError(
                "the camera needs PyAV: pip install 'recall-lab[capture]' (or pip install av)"
            ) from None
        av.logging.set_level(av.logging.PANIC)  # FFmpeg's own lines would garble the CLI's
        if self.is_file:
            self._open_file(av)
        else:
            self._open_v4l2(av)
        return self.info

    def _open_file(self, av) -> None:
        path = Path(self.device[len("file:") :]).expanduser()
        if not path.is_file():
            raise SourceError(f"no camera {self.device!r}: {path} does not exist")
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except IndexError:
            self._close_container()
            raise SourceError(f"no camera {self.device!r}: {path} holds no video") from None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._close_container()
            raise SourceError(f"no camera {self.device!r}: {path} is not a video ({exc})") from None
        st = self._stream
        rate = float(st.average_rate or st.guessed_rate or 0)
        self.info = VideoInfo(
            self.name,
            self.width or st.codec_context.width,
            self.height or st.codec_context.height,
            rate,
            f"file:{path.name}",
            description={
                "file": str(path),
                "codec": st.codec_context.name,
                "loop": self.loop,
                "jpeg_quality": self.quality,
            },
        )
        self._clock = {
            "clock": "lsl",
            "from": "file",
            "method": "a frame's presentation time in the file + the LSL time playback began",
        }

    def _v4l2_path(self) -> str:
        d = self.device[len("v4l2:") :] if self.device.startswith("v4l2:") else self.device
        return f"/dev/video{d}" if d.isdigit() else d

    def _open_v4l2(self, av) -> None:
        path = self._v4l2_path()
        hint = "`v4l2-ctl --list-devices` or `ls /dev/video*` lists cameras"
        if not Path(path).exists():
            raise SourceError(f"no camera {self.device!r}: {path} does not exist; {hint}")
        options = {"timestamps": "default"}  # the driver's own buffer times, unconverted
        if self.width and self.height:
            options["video_size"] = f"{self.width}x{self.height}"
        if self.fps:
            options["framerate"] = f"{self.fps:g}"
        try:
            self._container = av.open(path, format="v4l2", options=options)
            self._stream = self._container.streams.video[0]
            # The first frame tells whether the driver's timestamps are on CLOCK_MONOTONIC.
            self._first = next(self._container.decode(self._stream))
        except (av.error.FFmpegError, OSError, ValueError, IndexError, StopIteration) as exc:
            self._close_container()
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(f"no camera {self.device!r}: {detail}; {hint}") from None
        from drivers.clock import monotonic_to_lsl_offset

        st = self._stream
        first_s = self._first.time
        mono = time.clock_gettime(time.CLOCK_MONOTONIC)
        if first_s is not None and mono - 10.0 <= first_s <= mono + 1.0:
            offset, width = monotonic_to_lsl_offset()
            self._clock = {
                "clock": "lsl",
                "from": "v4l2 buffer timestamp (CLOCK_MONOTONIC)",
                "method": "lsl = buffer time + offset",
                "offset": offset,
                "uncertainty": width,
            }
            self._offset: float | None = offset
        else:
            self._clock = {
                "clock": "lsl",
                "from": "read time",
                "method": "the LSL time the frame was read (the driver gave no usable timestamp)",
            }
            self._offset = None
        rate = float(st.average_rate or st.guessed_rate or self.fps or 0)
        self.info = VideoInfo(
            self.name,
            self.width or st.codec_context.width,
            self.height or st.codec_context.height,
            rate,
            f"v4l2:{path}",
            description={
                "device": path,
                "input_codec": st.codec_context.name,
                "jpeg_quality": self.quality,
            },
        )

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception as exc:  # closing a broken device
                log.debug("closing %s: %s", self.device, exc)
            self._container = None

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        self.open()
        if self._thread is not None:
            return
        self._stop.clear()
        self._last_frame_wall = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._close_container()

    def __enter__(self) -> CameraSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take(self) -> tuple[list[bytes], np.ndarray]:
        """Everything captured since the last call: JPEG frames and their LSL timestamps.

        Also notices a stall (no frame for ``stall_timeout`` s) and reports dropped frames,
        as events.
        """
        self._watch()
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            dropped = self.dropped
        if dropped > self._reported_drops:
            from drivers.clock import local_clock

            t = items[0][1] if items else local_clock()
            n = dropped - self._reported_drops
            self._reported_drops = dropped
            self.events.append(Event(t, "recorder", "samples_lost", f"{self.name}:{n}"))
        return [b for b, _ in items], np.array([t for _, t in items], dtype=np.float64)

    def _watch(self) -> None:
        if (
            self._stalled_since is not None
            or self._finished
            or self.error is not None
            or self._thread is None
            or self._last_frame_wall is None
        ):
            return
        idle = time.monotonic() - self._last_frame_wall
        if idle <= self.stall_timeout:
            return
        from drivers.clock import local_clock

        period = 1.0 / self.info.nominal_rate if self.info.nominal_rate else 0.0
        began = self._last_ts + period if self._last_ts is not None else local_clock() - idle
        with self._lock:  # the capture thread may deliver a frame meanwhile
            if self._last_frame_wall is not None and (
                time.monotonic() - self._last_frame_wall <= self.stall_timeout
            ):
                return
            self._stalled_since = began
            self.events.append(Event(began, "recorder", "gap_start", self.name))
        log.warning("%s: no frames for %.1f s", self.name, self.stall_timeout)

    def _run(self) -> None:
        from drivers.clock import local_clock

        try:
            if self.is_file:
                self._play_file()
            else:
                self._capture_v4l2()
        except Exception as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.error = SourceError(f"camera {self.device!r} stopped: {detail}")
            log.warning("%s", self.error)
            self.events.append(Event(local_clock(), "recorder", "source_error", str(self.error)))

    def _play_file(self) -> None:
        from drivers.clock import local_clock

        st = self._stream
        period = 1.0 / self.info.nominal_rate if self.info.nominal_rate else 0.0
        start: float | None = None  # LSL time of the file's time 0
        shift = 0.0  # file time added by earlier loops
        while not self._stop.is_set():
            last = None
            for k, frame in enumerate(self._container.decode(st)):
                t_file = frame.time if frame.time is not None else k * period
                t_file += shift
                if start is None:
                    start = local_clock() - t_file
                    self._clock["offset"] = start
                due = start + t_file
                wait = due - local_clock()
                if wait > 0 and self._stop.wait(wait):
                    return
                self._deliver(frame, due)
                last = t_file
                if self._stop.is_set():
                    return
            if not self.loop or last is None:
                self._finished = True
                # The video file is over: said in the file, the EEG recording goes on.
                at = (start or local_clock()) + (last or 0.0) + period
                value = json.dumps({"video": self.name, "frames": self.frames})
                self.events.append(Event(at, "camera", "video_ended", value))
                return
            self._container.seek(0)
            shift = last + period

    def _capture_v4l2(self) -> None:
        from drivers.clock import local_clock

        frames = self._container.decode(self._stream)
        frame = self._first
        self._first = None
        while not self._stop.is_set():
            if frame is None:
                frame = next(frames, None)
                if frame is None:
                    raise SourceError("the camera stopped delivering frames")
            read_at = local_clock()
            if self._offset is not None and frame.time is not None:
                ts = min(frame.time + self._offset, read_at)
            else:
                ts = read_at
            self._deliver(frame, ts)
            frame = None

    def set_recording(self, on: bool, at: float | None = None) -> None:
        """Keep frames (``True``, the default) or let them pass unstored (the protocol's
        ``capture`` says the camera must not record now); the device stays open.

        ``at``: the LSL time the switch takes effect (the phase boundary), usually a moment
        ago. Frames are kept or left out by their own timestamps, not by when this is called:
        frames from after a stop that were not yet taken are left out, and a start reaches
        back into the last :attr:`preroll_seconds` of frames left out (encoded on the capture
        thread with the next frame, never here). Without ``at``: from now.
        """
        on = bool(on)
        with self._lock:
            if on == self.recording:
                return
            self.recording = on
            self._cut = None if at is None else float(at)
            if at is None:
                self._preroll.clear()
            elif not on:
                kept = [(jpeg, t) for jpeg, t in self._queue if t < at]
                self.frames -= len(self._queue) - len(kept)
                self._queue = deque(kept)

    def _keeps(self, ts: float) -> bool:
        """Whether a frame stamped ``ts`` is recorded (the state on its side of the cut)."""
        if self._cut is None or ts >= self._cut:
            return self.recording
        return not self.recording

    def _deliver(self, frame, ts: float) -> None:
        """Encode ``frame`` and queue it with its LSL time ``ts``."""
        with self._lock:
            keep = self._keeps(ts)
            if keep:
                # A start that reaches back: the frames left out since its time come first.
                back = [(f, t) for f, t in self._preroll if self._keeps(t)]
                self._preroll.clear()
            else:  # not stored by design: neither a stall nor a drop
                self._preroll.append((frame, float(ts)))
                while self._preroll and ts - self._preroll[0][1] > self.preroll_seconds:
                    self._preroll.popleft()
                self._last_frame_wall = time.monotonic()
                self._last_ts = float(ts)
                return
        for f, t in back:
            self._store(f, t)
        self._store(frame, ts)

    def _store(self, frame, ts: float) -> None:
        """Encode ``frame`` and queue it with its LSL time ``ts``."""
        image = frame.to_image()  # RGB (PIL), converted by FFmpeg's swscale
        if image.size != (self.info.width, self.info.height):
            from PIL import Image

            image = image.resize((self.info.width, self.info.height), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=self.quality)
        cap = max(30, int(self.max_queue_seconds * (self.info.nominal_rate or 30)))
        with self._lock:
            if len(self._queue) >= cap:
                self._queue.popleft()
                self.dropped += 1
            jpeg = buf.getvalue()
            self._queue.append((jpeg, float(ts)))
            self.frames += 1
            self.latest = jpeg
        with self._lock:
            self._last_frame_wall = time.monotonic()
            self._last_ts = float(ts)
            if self._stalled_since is not None:
                gap = max(0.0, ts - self._stalled_since)
                self.events.append(Event(ts, "recorder", "gap_end", self.name, gap))
                self._stalled_since = None
