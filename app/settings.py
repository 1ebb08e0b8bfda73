"""Console settings that persist between runs (QSettings).

Tests and parallel runs pass their own ``path`` so nothing they do touches the user's
settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt6 import QtCore

DEFAULTS: dict[str, Any] = {
    "source/kind": "synthetic",
    "source/board": "synthetic",
    "source/board_params": "",
    "source/lsl_name": "",
    "source/replay_file": "",
    "source/replay_speed": 1.0,
    "scope/window": 5.0,
    "scope/scale": 100.0,
    "scope/highpass": 1.0,
    "scope/notch": 50.0,
    "scope/spectrum": False,
    "session/out_dir": str(Path.home() / "recall-lab-sessions"),
    "session/protocol": "demo",
    "session/time_scale": 1.0,
    "session/pause_on_stall": False,
    "session/beep_on_stall": False,
    "capture/camera_kind": "none",  # none | device | file
    "capture/camera_device": "/dev/video0",
    "capture/camera_file": "",
    "capture/camera_size": "",  # "" (as delivered) or WIDTHxHEIGHT
    "capture/camera_fps": "",  # "" (as delivered) or frames per second (devices)
    "capture/microphone": "none",  # none | default | a device index or name
    "participant/screen": 0,
    "participant/fullscreen": False,
    "participant/keyboard": "qt",
    "participant/melody_dir": "",
    "offline/models_dir": "",
    "offline/decode_config": "",
    "window/geometry": QtCore.QByteArray(),
}


class AppSettings:
    """Typed access to the console's QSettings.

    Parameters
    ----------
    path
        An INI file to use instead of the platform's settings store.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            self._q = QtCore.QSettings("recall-lab", "recall-lab")
        else:
            self._q = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)

    def get(self, key: str) -> Any:
        default = DEFAULTS[key]
        value = self._q.value(key, default)
        if isinstance(default, bool):
            return value in (True, "true", "1", 1)
        if isinstance(default, float):
            try:
                return float(value)
            except (TypeError, ValueError):
                return default
        if isinstance(default, int):
            try:
                return int(value)
            except (TypeError, ValueError):
                return default
        return value

    def set(self, key: str, value: Any) -> None:
        if key not in DEFAULTS:
            raise KeyError(key)
        self._q.setValue(key, value)

    def sync(self) -> None:
        self._q.sync()

    @property
    def file_name(self) -> str:
        return self._q.fileName()
