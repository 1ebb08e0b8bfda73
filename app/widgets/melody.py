"""The guiding melody: pick an audio file and play it, or hum into the microphone.

Audio is handed on as it arrives through the :attr:`MelodyPanel.audio` signal: the microphone
callback (a PortAudio thread) emits each block and a worker thread emits a chosen file, and Qt
queues both to the receiver's thread. Nothing here reads files or audio devices on the GUI
thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtWidgets

from drivers.clock import local_clock

log = logging.getLogger(__name__)


class MelodyPanel(QtWidgets.QWidget):
    """Buttons to choose a file, play it, and record humming; a line says what happened.

    Signals
    -------
    audio(audio, sample_rate, origin, start_timestamp)
        float32 [n x channels] audio; origin ``microphone`` or ``file:<name>``.
    stored(origin)
        A file was read completely, or the humming recording stopped.
    """

    audio = QtCore.pyqtSignal(object, int, str, float)
    message = QtCore.pyqtSignal(str)
    stored = QtCore.pyqtSignal(str)
    _limit_reached = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, sample_rate: int = 16000):
        super().__init__(parent)
        self.sample_rate = sample_rate
        self.max_seconds = 15.0  # the protocol's record_seconds
        self.origin = ""
        #: Folder the chooser opens in (the protocol's ``melody_dir`` or the experimenter's).
        self.start_dir = ""
        self._stream = None
        self._audio: np.ndarray | None = None
        self._audio_rate = 0
        self.choose_button = QtWidgets.QPushButton("Choose a melody file…")
        self.play_button = QtWidgets.QPushButton("Play")
        self.record_button = QtWidgets.QPushButton("Record humming")
        self.record_button.setCheckable(True)
        self.play_button.setEnabled(False)
        self.info = QtWidgets.QLabel("Choose a piece of music, or hum the melody you remember.")
        self.info.setWordWrap(True)
        row = QtWidgets.QHBoxLayout()
        for b in (self.choose_button, self.play_button, self.record_button):
            b.setMinimumHeight(40)
            row.addWidget(b)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.info)
        self.choose_button.clicked.connect(self._choose)
        self.play_button.clicked.connect(self.play)
        self.record_button.toggled.connect(self._toggle_record)
        self.message.connect(self.info.setText)
        self._limit_reached.connect(self.stop_recording)
        self.stored.connect(lambda _: self.play_button.setEnabled(self._audio is not None))

    # ------------------------------------------------------------------ file
    def start_folder(self) -> str:
        """Where the melody chooser opens: :attr:`start_dir` (set by the protocol or the
        experimenter) if it exists, else the user's music folder, else home; never the
        working directory the experimenter started the app in."""
        for candidate in (
            self.start_dir,
            QtCore.QStandardPaths.writableLocation(
                QtCore.QStandardPaths.StandardLocation.MusicLocation
            ),
        ):
            if candidate and Path(candidate).is_dir():
                return str(Path(candidate).resolve())
        return str(Path.home())

    def _choose(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose a melody", self.start_folder(), "Audio (*.wav *.flac *.ogg)"
        )
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> None:
        """Read ``path`` on a worker thread, store it in the file and enable Play."""
        threading.Thread(target=self._load, args=(Path(path),), daemon=True).start()

    def _load(self, path: Path) -> None:
        import soundfile

        try:
            audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:
            self.message.emit(f"cannot read {path.name}: {exc}")
            return
        self._audio, self._audio_rate = audio, int(rate)
        origin = f"file:{path.name}"
        self.origin = origin
        self.audio.emit(audio, int(rate), origin, local_clock())
        self.message.emit(f"{path.name}: {len(audio) / rate:.1f} s")
        self.stored.emit(origin)

    def play(self) -> None:
        """Play the chosen file (returns at once)."""
        if self._audio is None:
            return
        try:
            import sounddevice as sd

            sd.play(self._audio, self._audio_rate)
        except Exception as exc:  # no sound card: say so, the session goes on
            self.message.emit(f"cannot play: {exc}")

    # ------------------------------------------------------------------ microphone
    def _toggle_record(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> None:
        """Open the default input; each block is emitted from the audio thread.

        Recording stops by itself after :attr:`max_seconds` (the protocol's ``record_seconds``).
        """
        try:
            import sounddevice as sd

            start = local_clock()
            left = [int(self.max_seconds * self.sample_rate)]

            def callback(indata, frames, time_info, status) -> None:  # PortAudio thread
                if left[0] <= 0:
                    return
                block = indata[: left[0]].copy()
                left[0] -= len(block)
                self.audio.emit(block, self.sample_rate, "microphone", start)
                if left[0] <= 0:
                    self._limit_reached.emit()  # queued: the GUI thread closes the stream

            self._stream = sd.InputStream(
                samplerate=self.sample_rate,
                channels=1,
                dtype="float32",
                blocksize=self.sample_rate // 10,  # 0.1 s: few signals, little latency
                callback=callback,
            )
            self.origin = "microphone"
            self._stream.start()
            self.info.setText("recording… click again to stop")
        except Exception as exc:
            self._stream = None
            self.record_button.setChecked(False)
            self.info.setText(f"no microphone: {exc}")

    def stop_recording(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
            self.info.setText("humming stored")
            self.stored.emit("microphone")
        if self.record_button.isChecked():
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)


def play_file(path: str | Path, on_error=None) -> threading.Thread:
    """Read ``path`` and play it on a worker thread (a protocol's ``music`` phase).

    ``on_error(message)`` is called (from that thread) when the file cannot be read or played;
    emit a Qt signal from it to show the message.
    """

    def work() -> None:
        try:
            import sounddevice as sd
            import soundfile

            audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            sd.play(audio, rate)
        except Exception as exc:  # no sound card, unreadable file: the session goes on
            if on_error is not None:
                on_error(f"cannot play {Path(path).name}: {exc}")

    t = threading.Thread(target=work, name="music", daemon=True)
    t.start()
    return t
