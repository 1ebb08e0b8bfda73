"""Where the offline stages find their models and their decoding settings (kept between runs)."""

from __future__ import annotations

from PyQt6 import QtWidgets

from app.settings import AppSettings
from app.widgets.background import in_background


def models_summary(folder: str) -> str:
    """Which generation models the folder holds, in one line (read off the GUI thread)."""
    from generation.models import MODEL_SPECS, model_path, models_dir

    root = models_dir(folder or None)
    found = [s.key for s in MODEL_SPECS if model_path(s.key, root)]
    missing = [s.key for s in MODEL_SPECS if s.required and s.key not in found]
    text = f"{root}: " + (", ".join(found) if found else "no models")
    if missing:
        text += f"; missing {', '.join(missing)} (recall-lab models says how to get them)"
    return text


class OfflineSettings(QtWidgets.QWidget):
    """The models folder (``generate --models``) and the decoding settings file (``decode
    --config``; empty: the defaults). Both are stored in the console's settings."""

    def __init__(
        self, settings: AppSettings | None = None, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.models = QtWidgets.QLineEdit(settings.get("offline/models_dir") if settings else "")
        self.models.setAccessibleName("Models folder")
        self.models.setPlaceholderText("default models folder (see recall-lab models)")
        self.models_browse = QtWidgets.QPushButton("…")
        self.models_browse.setAccessibleName("Choose models folder")
        self.models_label = QtWidgets.QLabel("")
        self.models_label.setAccessibleName("Models found")
        self.models_label.setWordWrap(True)
        self.config = QtWidgets.QLineEdit(settings.get("offline/decode_config") if settings else "")
        self.config.setAccessibleName("Decode settings")
        self.config.setPlaceholderText("default decoding settings (or a YAML file)")
        self.config_browse = QtWidgets.QPushButton("…")
        self.config_browse.setAccessibleName("Choose decode settings")
        for b in (self.models_browse, self.config_browse):
            b.setMaximumWidth(32)
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Models", _row(self.models, self.models_browse))
        form.addRow("", self.models_label)
        form.addRow("Decoding", _row(self.config, self.config_browse))
        self.models_browse.clicked.connect(self.choose_models)
        self.models.editingFinished.connect(self._models_changed)
        self.config_browse.clicked.connect(self.choose_config)
        self.config.editingFinished.connect(self._config_changed)
        self._models_changed()

    @property
    def models_dir(self) -> str:
        return self.models.text().strip()

    @property
    def decode_config(self) -> str:
        return self.config.text().strip()

    def choose_models(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir)
        if folder:
            self.models.setText(folder)
            self._models_changed()

    def choose_config(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Decoding settings", self.decode_config, "Settings (*.yaml *.yml *.json)"
        )
        if path:
            self.config.setText(path)
            self._config_changed()

    def _config_changed(self) -> None:
        if self.settings is not None:
            self.settings.set("offline/decode_config", self.decode_config)

    def _models_changed(self) -> None:
        folder = self.models_dir
        if self.settings is not None:
            self.settings.set("offline/models_dir", folder)
        self.models_label.setText("looking at the models folder…")
        in_background(lambda: models_summary(folder), self._models_found, self)

    def _models_found(self, text: str | None, error: BaseException | None) -> None:
        self.models_label.setText(text if error is None else f"models folder: {error}")


def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x, 1 if isinstance(x, QtWidgets.QLineEdit) else 0)
    return w
