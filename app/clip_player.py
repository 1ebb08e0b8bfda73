"""Plays a listening block's clips and says when their sound reached the loudspeaker.

The clip is read and played on a worker thread through a PortAudio callback stream
(sounddevice), never on the GUI thread. The first callback gives PortAudio's own estimate of
when its buffer leaves the digital-to-analogue converter (``outputBufferDacTime``); that
moment, moved onto the LSL clock, is the clip's start (PsychoPy's PTB sound backend times
sounds the same way). Pausing outputs silence and holds the position; ``stop`` ends the clip.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from PyQt6 import QtCore

from drivers.clock import local_clock
from protocols.library import Clip

log = logging.getLogger(__name__)


class ClipPlayer(QtCore.QObject):
    """One clip at a time.

    Signals
    -------
    started(float, object)
        LSL time the first sample reaches the output, and the device's output latency in
        seconds (``None`` when PortAudio gives none).
    failed(str)
        The clip could not be played (no sound device, unreadable file); one line.
    """

    started = QtCore.pyqtSignal(float, object)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._stream = None
        self._token = 0
        self._paused = False

    def play(self, clip: Clip) -> None:
        """Stop what plays and start ``clip`` (reading and opening happen on a worker)."""
        self.stop()
        with self._lock:
            self._token += 1
            token = self._token
            self._paused = False
        threading.Thread(target=self._run, args=(clip, token), name="clip", daemon=True).start()

    def pause(self, paused: bool) -> None:
        with self._lock:
            self._paused = bool(paused)

    def stop(self) -> None:
        with self._lock:
            self._token += 1
            stream, self._stream = self._stream, None
        if stream is not None:
            threading.Thread(target=_close, args=(stream,), name="clip-close", daemon=True).start()

    # ------------------------------------------------------------------ worker
    def _run(self, clip: Clip, token: int) -> None:
        try:
            import sounddevice as sd

            audio, rate = clip.read()
            # Hashed here, on the worker: the engine records the hash when the sound starts.
            clip.sha256  # noqa: B018
            pos = 0
            first = True

            def callback(out: np.ndarray, frames: int, t, status) -> None:
                nonlocal pos, first
                if first:
                    first = False
                    lead = float(t.outputBufferDacTime - t.currentTime)
                    latency = getattr(stream, "latency", None)
                    when = local_clock() + (lead if 0.0 <= lead < 2.0 else 0.0)
                    self.started.emit(when, None if latency is None else float(latency))
                with self._lock:
                    stale, paused = token != self._token, self._paused
                if stale:
                    raise sd.CallbackAbort
                if paused:
                    out.fill(0)
                    return
                n = min(frames, len(audio) - pos)
                out[:n] = audio[pos : pos + n]
                out[n:] = 0
                pos += n
                if pos >= len(audio):
                    raise sd.CallbackStop

            stream = sd.OutputStream(
                samplerate=rate, channels=audio.shape[1], dtype="float32", callback=callback
            )
            with self._lock:
                if token != self._token:
                    stream.close()
                    return
                self._stream = stream
            stream.start()
        except Exception as exc:  # no sound card, unreadable file: the session goes on
            msg = " ".join(str(exc).split()) or type(exc).__name__
            self.failed.emit(f"cannot play clip {clip.id}: {msg}")


def _close(stream) -> None:
    try:
        stream.abort()
        stream.close()
    except Exception as exc:
        log.debug("closing a clip stream: %s", exc)
