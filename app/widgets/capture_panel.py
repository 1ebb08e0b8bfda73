"""The participant's face and voice: which camera and microphone, consent, preview, level.

The panel only says what to record (device specifications as ``recall-lab record --camera``
and ``--microphone`` take them, see docs/capture.md) and whether the participant consented to
each stream; the console opens the devices on a worker when recording starts. Consent is given
per session: a box is unticked whenever its device is chosen and after every recording.

The cameras (V4L2, read from sysfs) and microphones (PortAudio) present are listed on a worker
thread when the panel opens and on *Refresh devices* (PortAudio probes the sound system, which
can take a second the GUI thread never waits for); a device can also be typed.
"""

from __future__ import annotations

import math
import threading

from PyQt6 import QtCore, QtGui, QtWidgets

from app.settings import AppSettings

CAMERA_KINDS = (
    ("none", "None"),
    ("device", "Camera device"),
    ("file", "Video file"),
)
#: Size of the live preview (pixels); frames are decoded straight to it.
PREVIEW_SIZE = QtCore.QSize(192, 144)
#: Level meter range, dB relative to full scale.
LEVEL_FLOOR_DB = -60
#: Frame sizes offered ("" = as the camera or file delivers them).
CAMERA_SIZES = ("", "320x240", "640x480", "800x600", "1280x720", "1920x1080")
#: Frame rates offered to a camera device ("" = the camera's default).
CAMERA_RATES = ("", "15", "25", "30", "60")


def camera_spec(kind: str, device: str = "", file: str = "", size: str = "", fps: str = "") -> str:
    """The camera specification for the panel's fields (``""``: no camera).

    ``size`` (``WIDTHxHEIGHT``) is asked of a device and scales a file's frames; ``fps`` is
    asked of a device (a file keeps its own rate).
    """
    options = []
    if size:
        width, _, height = size.partition("x")
        options += [f"width={width}", f"height={height}"]
    if kind == "device":
        target = device.strip()
        if fps:
            options.append(f"fps={fps}")
    elif kind == "file":
        target = f"file:{file.strip()}" if file.strip() else ""
    else:
        return ""
    if not target:
        return ""
    if options:
        return target + ("&" if "?" in target else "?") + "&".join(options)
    return target


def _combo_value(combo: QtWidgets.QComboBox) -> str:
    """A combo box's value: the chosen item's data, or the text typed into it."""
    text = combo.currentText().strip()
    i = combo.currentIndex()
    if i >= 0 and text == combo.itemText(i) and combo.itemData(i) is not None:
        return str(combo.itemData(i))
    return text


def _select(combo: QtWidgets.QComboBox, value: str) -> None:
    """Show ``value`` in ``combo``: its item if one has it as data or text, else as text."""
    for i in range(combo.count()):
        if combo.itemData(i) == value or combo.itemText(i) == value:
            combo.setCurrentIndex(i)
            return
    if combo.isEditable():
        combo.setEditText(value)


def list_devices(*, rescan: bool = False) -> dict[str, object]:
    """Cameras and microphones present now (see :func:`drivers.camera.list_cameras` and
    :func:`drivers.microphone.list_microphones`, ``rescan`` as there); ``error`` says why a
    list is missing."""
    from data_schema.errors import SourceError
    from drivers.camera import list_cameras
    from drivers.microphone import list_microphones

    out: dict[str, object] = {"cameras": list_cameras(), "microphones": [], "error": ""}
    try:
        out["microphones"] = list_microphones(rescan=rescan)
    except SourceError as exc:
        out["error"] = str(exc)
    return out


def microphone_spec(text: str) -> str:
    """The microphone specification for the field (``""``: no microphone)."""
    text = text.strip()
    return "" if text.lower() in ("", "none") else text


def level_db(samples) -> float:
    """RMS level of ``samples`` (full scale 1.0) in dBFS, floored at :data:`LEVEL_FLOOR_DB`."""
    import numpy as np

    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return float(LEVEL_FLOOR_DB)
    rms = math.sqrt(float(np.mean(x * x)))
    return max(float(LEVEL_FLOOR_DB), 20 * math.log10(rms) if rms > 0 else -math.inf)


class CapturePanel(QtWidgets.QGroupBox):
    """Camera and microphone choice, the participant's consent per stream, preview and level.

    Attributes
    ----------
    consent_video, consent_audio
        The participant's consent for this session's video and audio (unticked by default).
    preview
        The camera's latest recorded frame (while recording).
    level
        The microphone's level over the last 0.2 s (while recording).
    devices_listed
        Signal: the devices found by :meth:`refresh_devices` (a dict, see
        :func:`list_devices`), delivered on the GUI thread.
    """

    devices_listed = QtCore.pyqtSignal(object)

    def __init__(self, settings: AppSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Capture (face and voice)", parent)
        self.settings = settings
        self.camera_kind = QtWidgets.QComboBox()
        for key, label in CAMERA_KINDS:
            self.camera_kind.addItem(label, key)
        self.camera_device = QtWidgets.QComboBox()
        self.camera_device.setEditable(True)
        self.camera_device.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        self.camera_device.lineEdit().setPlaceholderText("/dev/video0 or an index, e.g. 0")
        self.camera_device.setEditText(settings.get("capture/camera_device"))
        self.camera_size = QtWidgets.QComboBox()
        for size in CAMERA_SIZES:
            self.camera_size.addItem(size.replace("x", " x ") or "as delivered", size)
        self.camera_fps = QtWidgets.QComboBox()
        for fps in CAMERA_RATES:
            self.camera_fps.addItem(f"{fps} fps" if fps else "camera default", fps)
        _select(self.camera_size, settings.get("capture/camera_size") or "")
        _select(self.camera_fps, settings.get("capture/camera_fps") or "")
        self.refresh = QtWidgets.QPushButton("Refresh devices")
        self.devices_note = QtWidgets.QLabel("")
        self.devices_note.setWordWrap(True)
        self.devices_note.setStyleSheet("color: #666;")
        self.camera_file = QtWidgets.QLineEdit(settings.get("capture/camera_file"))
        self.camera_file.setPlaceholderText("a video played as if live (?loop=true repeats it)")
        self.camera_browse = QtWidgets.QPushButton("Browse…")
        self.microphone = QtWidgets.QComboBox()
        self.microphone.setEditable(True)
        self.microphone.addItems(["none", "default"])
        self.microphone.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        self.microphone.setToolTip(
            "none, default, a device listed here, or an index or (part of a) name as "
            "`recall-lab boards --microphones` lists them"
        )
        self.microphone.setCurrentText(settings.get("capture/microphone") or "none")
        self.consent_video = QtWidgets.QCheckBox("Participant consents to video")
        self.consent_audio = QtWidgets.QCheckBox("Participant consents to audio")
        self.preview = QtWidgets.QLabel("no camera")
        self.preview.setFixedSize(PREVIEW_SIZE)
        self.preview.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #222; color: #aaa;")
        self.level = QtWidgets.QProgressBar()
        self.level.setRange(LEVEL_FLOOR_DB, 0)
        self.level.setValue(LEVEL_FLOOR_DB)
        self.level.setFormat("–")
        self.level.setMaximumHeight(16)
        for w, name in (
            (self.camera_kind, "Camera"),
            (self.camera_device, "Camera device"),
            (self.camera_size, "Camera frame size"),
            (self.camera_fps, "Camera frame rate"),
            (self.refresh, "Refresh devices"),
            (self.devices_note, "Devices found"),
            (self.camera_file, "Camera video file"),
            (self.camera_browse, "Browse camera video"),
            (self.microphone, "Microphone"),
            (self.consent_video, "Participant consents to video"),
            (self.consent_audio, "Participant consents to audio"),
            (self.preview, "Camera preview"),
            (self.level, "Microphone level"),
        ):
            w.setAccessibleName(name)

        form = QtWidgets.QFormLayout()
        form.addRow("Camera", self.camera_kind)
        form.addRow("Device", self.camera_device)
        form.addRow("Video", _row(self.camera_file, self.camera_browse))
        form.addRow("Frame size", self.camera_size)
        form.addRow("Frame rate", self.camera_fps)
        form.addRow("Microphone", self.microphone)
        form.addRow(_row(self.refresh, self.devices_note))
        form.addRow(self.consent_video)
        form.addRow(self.consent_audio)
        self._form = form
        live = QtWidgets.QVBoxLayout()
        live.addWidget(self.preview)
        live.addWidget(self.level)
        live.addStretch(1)
        lay = QtWidgets.QHBoxLayout(self)
        lay.addLayout(form, 1)
        lay.addLayout(live)

        i = self.camera_kind.findData(settings.get("capture/camera_kind"))
        self.camera_kind.setCurrentIndex(max(0, i))
        self.camera_kind.currentIndexChanged.connect(self._camera_changed)
        self.camera_device.currentTextChanged.connect(self._camera_changed)
        self.camera_size.currentIndexChanged.connect(self._camera_changed)
        self.camera_fps.currentIndexChanged.connect(self._camera_changed)
        self.refresh.clicked.connect(lambda: self.refresh_devices(rescan=True))
        self.devices_listed.connect(self._fill_devices)
        self._lister: threading.Thread | None = None
        self.camera_file.textEdited.connect(self._camera_changed)
        self.microphone.currentTextChanged.connect(self._microphone_changed)
        self.camera_browse.clicked.connect(self._browse)
        self._recording = False
        self._camera_changed()
        self._microphone_changed()
        self.refresh_devices()

    # ------------------------------------------------------------------ values
    def camera(self) -> str:
        """The chosen camera's specification (``""``: none), consented to or not."""
        return camera_spec(
            self.camera_kind.currentData(),
            _combo_value(self.camera_device),
            self.camera_file.text(),
            self.camera_size.currentData() or "",
            self.camera_fps.currentData() or "",
        )

    def microphone_choice(self) -> str:
        """The chosen microphone's specification (``""``: none), consented to or not."""
        return microphone_spec(_combo_value(self.microphone))

    # ------------------------------------------------------------------ devices
    def refresh_devices(self, *, rescan: bool = False) -> None:
        """List the cameras and microphones on a worker; :attr:`devices_listed` brings them.

        ``rescan`` (the button) restarts PortAudio to see microphones plugged in since it
        started: never while recording (the button is disabled then).
        """
        if self._lister is not None and self._lister.is_alive():
            return
        rescan = rescan and not self._recording
        self.refresh.setEnabled(False)
        self.devices_note.setText("looking for devices…")

        def work() -> None:
            try:
                found = list_devices(rescan=rescan)
            except Exception as exc:  # never leave the button disabled
                found = {"cameras": [], "microphones": [], "error": str(exc)}
            self.devices_listed.emit(found)

        self._lister = threading.Thread(target=work, name="list-devices", daemon=True)
        self._lister.start()

    def _fill_devices(self, found: dict) -> None:
        """Offer the devices found, keeping what is chosen or typed."""
        cameras, mics = found.get("cameras", []), found.get("microphones", [])
        cam, mic = _combo_value(self.camera_device), _combo_value(self.microphone)
        for combo in (self.camera_device, self.microphone):
            combo.blockSignals(True)
        self.camera_device.clear()
        for c in cameras:
            self.camera_device.addItem(f"{c['name']} ({c['spec']})", c["spec"])
        _select(self.camera_device, cam)
        self.microphone.clear()
        self.microphone.addItem("none", "none")
        self.microphone.addItem("default", "default")
        for m in mics:
            self.microphone.addItem(f"{m['name']} ({m['hostapi']})", m["spec"])
        _select(self.microphone, mic or "none")
        for combo in (self.camera_device, self.microphone):
            combo.blockSignals(False)
        note = f"{len(cameras)} camera(s), {len(mics)} microphone(s) found"
        if found.get("error"):
            note += f"; {found['error']}"
        self.devices_note.setText(note)
        self.refresh.setEnabled(not self._recording)

    def values(self) -> dict[str, object]:
        """What to open and what the participant consented to (also saved to the settings).

        ``camera``/``microphone`` are what is recorded: ``""`` when none is chosen or the
        participant did not consent (the device is then not opened at all).
        """
        s = self.settings
        s.set("capture/camera_kind", self.camera_kind.currentData())
        s.set("capture/camera_device", _combo_value(self.camera_device))
        s.set("capture/camera_size", self.camera_size.currentData() or "")
        s.set("capture/camera_fps", self.camera_fps.currentData() or "")
        s.set("capture/camera_file", self.camera_file.text().strip())
        s.set("capture/microphone", self.microphone_choice() or "none")
        cam, mic = self.camera(), self.microphone_choice()
        video, audio = self.consent_video.isChecked(), self.consent_audio.isChecked()
        return {
            "camera_chosen": cam,
            "microphone_chosen": mic,
            "consent_video": bool(cam and video),
            "consent_audio": bool(mic and audio),
            "camera": cam if video else "",
            "microphone": mic if audio else "",
        }

    def set_camera(self, spec: str) -> None:
        """Fill the camera fields from a specification given on the command line."""
        spec = spec.strip()
        if spec.lower() in ("", "none"):
            kind = "none"
        elif spec.startswith("file:"):
            kind = "file"
            self.camera_file.setText(spec[len("file:") :])
        else:
            kind = "device"
            self.camera_device.setEditText(spec)
        self.camera_kind.setCurrentIndex(max(0, self.camera_kind.findData(kind)))
        self._camera_changed()

    def set_microphone(self, spec: str) -> None:
        _select(self.microphone, spec.strip() or "none")

    # ------------------------------------------------------------------ state
    def set_recording(self, recording: bool, *, busy: bool = False) -> None:
        """Lock the choices while recording (or while the devices are being opened)."""
        locked = recording or busy
        was = self._recording
        self._recording = locked
        for w in (
            self.camera_kind,
            self.camera_device,
            self.camera_file,
            self.camera_browse,
            self.camera_size,
            self.camera_fps,
            self.refresh,
        ):
            w.setEnabled(not locked)
        self.microphone.setEnabled(not locked)
        if not locked:
            self._camera_changed(keep_consent=True)
            self._microphone_changed(keep_consent=True)
        else:
            self.consent_video.setEnabled(False)
            self.consent_audio.setEnabled(False)
        if was and not locked:
            self.clear_live()

    def new_session(self) -> None:
        """After a recording: consent is asked again for the next session."""
        self.consent_video.setChecked(False)
        self.consent_audio.setChecked(False)

    def _camera_changed(self, *_: object, keep_consent: bool = False) -> None:
        kind = self.camera_kind.currentData()
        self._form.setRowVisible(self.camera_device, kind == "device")
        self._form.setRowVisible(self.camera_file.parentWidget(), kind == "file")
        self._form.setRowVisible(self.camera_size, kind in ("device", "file"))
        self._form.setRowVisible(self.camera_fps, kind == "device")
        chosen = bool(self.camera())
        if not keep_consent:
            self.consent_video.setChecked(False)  # a new device: consent is asked for it
        self.consent_video.setEnabled(chosen and not self._recording)
        if not chosen:
            self.consent_video.setChecked(False)
        if not self._recording:
            self.preview.setText("no camera" if not chosen else "preview while recording")

    def _microphone_changed(self, *_: object, keep_consent: bool = False) -> None:
        chosen = bool(self.microphone_choice())
        if not keep_consent:
            self.consent_audio.setChecked(False)
        self.consent_audio.setEnabled(chosen and not self._recording)
        if not chosen:
            self.consent_audio.setChecked(False)

    # ------------------------------------------------------------------ live
    def show_frame(self, jpeg: bytes) -> bool:
        """Decode ``jpeg`` straight to the preview's size (libjpeg scales while decoding)."""
        data = QtCore.QByteArray(jpeg)
        buf = QtCore.QBuffer(data)
        buf.open(QtCore.QIODevice.OpenModeFlag.ReadOnly)
        reader = QtGui.QImageReader(buf, b"jpeg")
        size = reader.size()
        if size.isValid():
            keep = QtCore.Qt.AspectRatioMode.KeepAspectRatio
            reader.setScaledSize(size.scaled(PREVIEW_SIZE, keep))
        image = reader.read()
        if image.isNull():
            return False
        self.preview.setPixmap(QtGui.QPixmap.fromImage(image))
        return True

    def show_level(self, db: float | None) -> None:
        """The microphone's level in dBFS (``None``: no microphone)."""
        if db is None:
            self.level.setValue(LEVEL_FLOOR_DB)
            self.level.setFormat("–")
            return
        self.level.setValue(round(db))
        self.level.setFormat(f"{db:.0f} dBFS")

    def clear_live(self) -> None:
        self.preview.clear()
        self._camera_changed(keep_consent=True)
        self.show_level(None)

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Video played as the camera", "", "Videos (*.mp4 *.mkv *.avi *.mov *.webm)"
        )
        if path:
            self.camera_file.setText(path)
            self._camera_changed()


def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x)
    return w
