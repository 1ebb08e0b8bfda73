"""Plays a preference phase's video on the participant display, its sound through PortAudio.

The sound (the WAV beside the MP4, written by ``recall-lab generate``) is played by a
:class:`~app.clip_player.ClipPlayer`, which says when its first sample reached the
loudspeaker; that moment is the video's time zero, so the pictures follow the sound. Frames are
decoded (PyAV) and scaled on a worker thread and handed to the GUI as images when due; the GUI
thread only draws them. A video without sound starts its clock at its first frame.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from PyQt6 import QtCore, QtGui

from app.clip_player import ClipPlayer
from drivers.clock import local_clock
from protocols.reconstructions import ShownVideo

log = logging.getLogger(__name__)

#: Longest side of the frames handed to the display (pixels).
MAX_SIDE = 720


class _Sound:
    """A video's WAV as the clip player reads it (its hash: the video's)."""

    def __init__(self, video: ShownVideo, name: str) -> None:
        self.path = video.audio
        self.video = video
        self.id = name

    @property
    def sha256(self) -> str:
        return self.video.sha256

    def read(self) -> tuple[np.ndarray, int]:
        import soundfile

        audio, rate = soundfile.read(str(self.path), dtype="float32", always_2d=True)
        return audio, int(rate)


class VideoPlayer(QtCore.QObject):
    """One video at a time.

    Signals
    -------
    started(float, object)
        LSL time the video began (its first sound at the loudspeaker, or its first frame on
        screen without sound), and the audio device's output latency (``None`` if unknown).
    frame(QImage)
        The next picture, when it is due.
    failed(str)
        The video could not be played; one line.
    """

    started = QtCore.pyqtSignal(float, object)
    frame = QtCore.pyqtSignal(QtGui.QImage)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.sound = ClipPlayer(self)
        self.sound.started.connect(self._sound_started)
        self.sound.failed.connect(self._sound_failed)
        self._lock = threading.Lock()
        self._token = 0
        self._origin: float | None = None  # LSL time of the video's time zero
        self._paused_at: float | None = None
        self._silent = False  # no sound: the pictures keep their own time
        self.frames_shown = 0

    def play(self, video: ShownVideo, label: str) -> None:
        """Stop what plays and start ``video`` (decoding and opening happen on workers)."""
        self.stop()
        with self._lock:
            self._token += 1
            token = self._token
            self._origin = None
            self._paused_at = None
            self._silent = video.audio is None
        self.frames_shown = 0
        if video.audio is not None:
            self.sound.play(_Sound(video, f"video {label}"))
        args = (video, token)
        threading.Thread(target=self._decode, args=args, name="video", daemon=True).start()

    def pause(self, paused: bool) -> None:
        self.sound.pause(paused)
        with self._lock:
            now = local_clock()
            if paused and self._paused_at is None:
                self._paused_at = now
            elif not paused and self._paused_at is not None:
                if self._origin is not None:
                    self._origin += now - self._paused_at  # the pictures wait with the sound
                self._paused_at = None

    def stop(self) -> None:
        self.sound.stop()
        with self._lock:
            self._token += 1

    # ------------------------------------------------------------------ workers
    def _sound_failed(self, message: str) -> None:
        """No sound (no output device, unreadable WAV): the video is shown without it."""
        with self._lock:
            self._silent = True
        self.failed.emit(f"{message}; the video is shown without sound")

    def _sound_started(self, when: float, latency) -> None:
        with self._lock:
            if self._origin is None:
                self._origin = float(when)
        self.started.emit(float(when), latency)

    def _decode(self, video: ShownVideo, token: int) -> None:
        path = video.video
        try:
            import av

            video.sha256  # noqa: B018  (hashed on this worker, before the video can start)
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                for frame in container.decode(stream):
                    with self._lock:
                        if token != self._token:
                            return
                    w, h = frame.width, frame.height
                    scale = min(1.0, MAX_SIDE / max(w, h))
                    rgb = frame.to_ndarray(
                        format="rgb24",
                        width=int(w * scale) // 2 * 2,
                        height=int(h * scale) // 2 * 2,
                    )
                    image = QtGui.QImage(
                        rgb.data,
                        rgb.shape[1],
                        rgb.shape[0],
                        rgb.shape[1] * 3,
                        QtGui.QImage.Format.Format_RGB888,
                    ).copy()  # the image owns its pixels once handed over
                    due = float(frame.time or 0.0)
                    if not self._wait(token, due):
                        return
                    self.frames_shown += 1
                    self.frame.emit(image)
        except Exception as exc:  # unreadable file: the session goes on
            msg = " ".join(str(exc).split()) or type(exc).__name__
            self.failed.emit(f"cannot play video {path.name}: {msg}")

    def _wait(self, token: int, due: float) -> bool:
        """Sleep until the frame at ``due`` seconds of video is due; False when stopped."""
        while True:
            with self._lock:
                if token != self._token:
                    return False
                origin, paused = self._origin, self._paused_at is not None
                if origin is None and self._silent:
                    self._origin = origin = local_clock() - due
                    start = origin
                else:
                    start = None
            if start is not None:
                self.started.emit(start, None)
            if origin is not None and not paused:
                wait = origin + due - local_clock()
                if wait <= 0:
                    return True
                time.sleep(min(wait, 0.02))
            else:
                time.sleep(0.005)  # the sound has not started yet, or paused
