"""The participant's keys, whichever window has focus.

A person at the console clicks Pause, Skip or Record; the window manager then gives the keyboard
focus to the console, and before this module the participant's valence keys went there: recorded
nowhere, and a space bar could press the console's focused button. :class:`ParticipantInput`
is an application-wide event filter that sees every key event of every window of the app before
any widget does:

- While a protocol runs, every key goes to the protocol (:attr:`key` signal) and no widget of the
  console ever gets it. The one exception is the participant display's text box in a text phase,
  which receives the keys pressed after it appeared (a key held from the recall phase never
  types into it).
- With no protocol running, keys pressed in the participant display are recorded as free
  valence keys, as before; the console's own widgets work normally.
- With a participant keyboard device (XInput2 or evdev, :mod:`drivers.keyboard`), the device
  gives the key events (its own clock, any focus); this filter then only keeps keys away from the
  console's buttons while a protocol runs and still lets the text box take typing.

Key times are taken first thing (:func:`app.keys.input_time`: the X server's own time on X11).
Auto-repeat pairs are recognised from their timestamps (:mod:`drivers.key_repeat`), so a held key
is one press.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtGui, QtWidgets

from app.keys import input_time, key_name
from drivers.clock import local_clock
from drivers.key_repeat import KeyChange, ReleasePressPairs

_PRESS = QtCore.QEvent.Type.KeyPress
_RELEASE = QtCore.QEvent.Type.KeyRelease
_SHORTCUT_OVERRIDE = QtCore.QEvent.Type.ShortcutOverride


class ParticipantInput(QtCore.QObject):
    """Route key events of the whole application to the participant's protocol.

    Parameters
    ----------
    participant
        The participant display (its text box is the only widget that takes typing during a
        protocol).

    Signals
    -------
    key(t, key, down, repeat)
        One key change as the protocol should see it (LSL time of the event itself), from the
        app's windows or from the keyboard device (:meth:`open_device`).
    """

    key = QtCore.pyqtSignal(float, str, bool, bool)
    _device_key = QtCore.pyqtSignal(object)  # drivers.keyboard.KeyEvent, reader thread -> GUI

    #: Device keys reach the GUI thread through a queued signal a few ms after their time; the
    #: protocol is kept this far behind so a key near a phase boundary lands in its own phase.
    DEVICE_LAG_S = 0.02

    def __init__(self, participant: QtWidgets.QWidget, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.participant = participant
        self.protocol_running = False
        self.device = None  # a drivers.keyboard.ParticipantKeyboard while one is open
        self.text_box: QtWidgets.QWidget | None = None  # set while a text phase shows it
        self._pairs = ReleasePressPairs()
        self._stale: set[str] = set()  # keys down when the text box appeared
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._flush)
        self._device_key.connect(self._on_device_key)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    # ------------------------------------------------------------------ state from the console
    def set_protocol_running(self, running: bool) -> None:
        self.protocol_running = bool(running)
        if not running:
            self.set_text_box(None)

    def set_text_box(self, box: QtWidgets.QWidget | None) -> None:
        """The text box of the phase now shown (``None``: no text phase)."""
        self.text_box = box
        # Keys down now were pressed before the box appeared: they never type into it.
        self._stale = set(self._pairs.down) if box is not None else set()

    @property
    def device_active(self) -> bool:
        return self.device is not None

    def open_device(self, spec: str) -> dict[str, object]:
        """Read the participant's keys from keyboard ``spec`` (``qt``: the app's windows).

        Returns what the session file records about where the keys come from
        (``participant_input``). Raises :class:`RecallLabError` (one clear line) if the device
        cannot be opened.
        """
        self.close_device()
        if spec == "qt":
            return {
                "backend": "qt",
                "device": "the app's windows, any focus",
                "clock": "X server event time (ms of CLOCK_MONOTONIC = the LSL clock) on X11; "
                "the key handler's LSL time elsewhere",
            }
        from drivers.keyboard import open_keyboard

        kb = open_keyboard(spec, self._device_key.emit)
        kb.start()
        self.device = kb
        return {
            "backend": kb.info.backend,
            "device": kb.info.name,
            "spec": kb.info.spec,
            "clock_mapping": kb.clock_mapping,
        }

    def close_device(self) -> None:
        kb, self.device = self.device, None
        if kb is not None:
            kb.close()

    def device_error(self) -> str | None:
        """Why the keyboard device stopped (it is then closed: the app's windows take over)."""
        kb = self.device
        if kb is None or not kb.error:
            return None
        self.close_device()
        return str(kb.error)

    def _on_device_key(self, ev: object) -> None:
        if self.device is not None:
            self.key.emit(ev.timestamp, ev.key, ev.down, ev.repeat)

    def horizon(self, now: float) -> float:
        """The time up to which every key event is known (a release may still be pending)."""
        if self.device is not None:
            return now - self.DEVICE_LAG_S
        pending = self._pairs.pending_since
        return now if pending is None else min(now, pending)

    def close(self) -> None:
        self.close_device()
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self._timer.stop()

    # ------------------------------------------------------------------ the filter
    def eventFilter(self, obj: QtCore.QObject, e: QtCore.QEvent) -> bool:
        kind = e.type()
        if kind == _SHORTCUT_OVERRIDE and self.protocol_running and not self.device_active:
            # Shortcuts (a console button's mnemonic) must not fire from participant keys: an
            # accepted override makes Qt deliver the key as a key press, which is filtered.
            e.accept()
            return True
        if kind not in (_PRESS, _RELEASE) or not isinstance(obj, QtGui.QWindow):
            return False  # act once per event, at the window, before any widget sees it
        t = input_time(e, local_clock())
        if self._participant_dialog(obj):
            return False  # a dialog the participant opened (the melody chooser) takes typing
        in_participant = self._in_participant_window(obj)
        if not self.protocol_running and not in_participant:
            return False  # the experimenter typing into the console, no protocol running
        name = key_name(e)
        if kind == _PRESS:
            changes = self._pairs.press(name, t, repeat_hint=e.isAutoRepeat())
        else:
            changes = self._pairs.release(name, t, repeat_hint=e.isAutoRepeat())
        self._emit(changes)
        if self._pairs.pending_since is not None:
            self._timer.start(int(self._pairs.hold * 1000) + 5)
        if not self.protocol_running:
            return False
        box = self.text_box
        if box is not None and box.isVisible():
            if name in self._stale:
                return True  # held since before the box appeared: never typed
            if in_participant and box.hasFocus():
                return False  # the box takes it as typing
            if not self.device_active or in_participant:
                # Typing reaches the box whichever window has focus, as the keys do.
                copy = QtGui.QKeyEvent(
                    kind, e.key(), e.modifiers(), e.text(), e.isAutoRepeat(), e.count()
                )
                QtWidgets.QApplication.sendEvent(box, copy)
                return True
        if self.device_active and not in_participant:
            # The device gives the participant's keys; the experimenter's own keyboard still
            # types into the console's fields (its buttons never take keyboard focus).
            return False
        return True  # nothing of the console reacts to participant keys

    # ------------------------------------------------------------------ internals
    def _flush(self) -> None:
        self._emit(self._pairs.flush(local_clock()))
        if self._pairs.pending_since is not None:
            self._timer.start(int(self._pairs.hold * 1000) + 5)

    def _emit(self, changes: list[KeyChange]) -> None:
        for c in changes:
            if not c.down:
                self._stale.discard(c.key)
            if not self.device_active:
                self.key.emit(c.timestamp, c.key, c.down, c.repeat)

    def _participant_dialog(self, window: QtGui.QWindow) -> bool:
        modal = QtWidgets.QApplication.activeModalWidget()
        if modal is None or modal.windowHandle() is not window:
            return False
        parent = modal.parentWidget()
        return parent is not None and parent.window() is self.participant

    def _in_participant_window(self, window: QtGui.QWindow) -> bool:
        handle = self.participant.windowHandle()
        return handle is not None and window is handle
