"""Open an offline stage's result inside the console: pictures, videos, text, the valence plot.

Every result opens in a window of the console, so a double-click always shows something, with
or without a desktop application for the file type. Files the console cannot show (a saved
model) open with the desktop's application, or a message says where the file is.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from app.widgets.background import in_background

IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".svg"}
MEDIA = {".mp4", ".webm", ".mkv", ".mov", ".wav", ".flac", ".mp3", ".ogg"}
TEXT = {".json", ".md", ".txt", ".csv", ".tsv", ".yaml", ".yml", ".log", ".html"}
#: Largest text file shown in full.
MAX_TEXT_BYTES = 2_000_000


class ImageView(QtWidgets.QScrollArea):
    """A picture at its own size (scaled down to fit the screen)."""

    def __init__(self, path: Path, title: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlag(QtCore.Qt.WindowType.Window)
        self.setWindowTitle(title)
        self.label = QtWidgets.QLabel(f"reading {path.name}…")
        self.label.setAccessibleName("Picture")
        self.label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setWidget(self.label)
        self.setWidgetResizable(True)
        self.resize(800, 600)
        in_background(lambda: path.read_bytes(), self._show, self)

    def _show(self, data: bytes | None, error: BaseException | None) -> None:
        image = QtGui.QImage.fromData(data or b"")
        if error is not None or image.isNull():
            self.label.setText(f"cannot show this picture ({error or 'not an image'})")
            return
        screen = self.screen().availableGeometry().size() * 0.8
        pixmap = QtGui.QPixmap.fromImage(image)
        if pixmap.width() > screen.width() or pixmap.height() > screen.height():
            pixmap = pixmap.scaled(screen, QtCore.Qt.AspectRatioMode.KeepAspectRatio)
        self.label.setPixmap(pixmap)
        self.resize(min(pixmap.width() + 24, screen.width()), min(pixmap.height() + 24, 900))


class TextView(QtWidgets.QPlainTextEdit):
    """A text file (JSON, Markdown, CSV...), read-only."""

    def __init__(self, path: Path, title: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlag(QtCore.Qt.WindowType.Window)
        self.setWindowTitle(title)
        self.setAccessibleName("File text")
        self.setReadOnly(True)
        self.setPlainText(f"reading {path.name}…")
        self.resize(760, 560)

        def read() -> str:
            with open(path, "rb") as f:
                data = f.read(MAX_TEXT_BYTES + 1)
            text = data[:MAX_TEXT_BYTES].decode("utf-8", "replace")
            return text + ("\n… (cut)" if len(data) > MAX_TEXT_BYTES else "")

        in_background(read, self._show, self)

    def _show(self, text: str | None, error: BaseException | None) -> None:
        self.setPlainText(text if error is None else f"cannot read this file: {error}")


def open_result(
    path: Path, title: str, parent: QtWidgets.QWidget, session: Path | None = None
) -> QtWidgets.QWidget | None:
    """Show ``path`` in a window of the console (returned), or with the desktop's application.

    ``title`` is the name the results list shows (relative to the recording's folder);
    ``session`` the file the result was made from (a video's review shows its sketch and
    melody).
    """
    suffix = path.suffix.lower()
    window: QtWidgets.QWidget | None = None
    if suffix in IMAGES:
        window = ImageView(path, title, parent)
    elif suffix in MEDIA:
        from app.widgets.video_player import VideoPlayer

        window = VideoPlayer(path, parent, session=session)
        window.setWindowTitle(f"Video: {title}")
    elif suffix in TEXT:
        window = TextView(path, title, parent)
    if window is not None:
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        window.show()
        window.raise_()
        return window
    if not QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(path))):
        QtWidgets.QMessageBox.information(
            parent,
            "No application for this file",
            f"No application on this computer opens {path.suffix or 'this'} files.\n"
            f"The file is at:\n{path}",
        )
    return None
