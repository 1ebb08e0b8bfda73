"""The console's live event log: a table fed from the controller's event log by polling."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from data_schema.types import Event
from drivers.base import EventLog


class EventLogView(QtWidgets.QTableWidget):
    """Newest events at the bottom; keeps at most ``max_rows`` rows."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, max_rows: int = 2000):
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["time (LSL s)", "source", "label", "value"])
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.max_rows = max_rows
        self._log: EventLog | None = None
        self._pos = 0

    def follow(self, log: EventLog) -> None:
        self._log, self._pos = log, 0

    def poll(self) -> int:
        """Append events added since the last poll (timer slot); returns how many."""
        if self._log is None:
            return 0
        events, self._pos = self._log.read_since(self._pos)
        for e in events:
            self.add(e)
        if events:
            self.scrollToBottom()
        return len(events)

    def add(self, e: Event) -> None:
        row = self.rowCount()
        self.insertRow(row)
        for col, text in enumerate((f"{e.timestamp:.3f}", e.source, e.label, e.value)):
            item = QtWidgets.QTableWidgetItem(text)
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
            self.setItem(row, col, item)
        if self.rowCount() > self.max_rows:
            self.removeRow(0)
