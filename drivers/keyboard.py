"""The participant's keyboard, read directly from the device, whatever window has focus.

Like Psychtoolbox's KbQueue (which PsychoPy's ``ptb`` keyboard backend uses), a
:class:`ParticipantKeyboard` reads one chosen keyboard in a background thread and stamps each
key event with the device's own time, mapped onto the LSL clock. Key presses then count
whether or not the participant window has focus (an experimenter clicking in the console no
longer swallows the participant's responses), and their timestamps do not depend on how busy
the GUI thread is.

Two backends, chosen by the spec:

- ``x11:<device name>`` (:mod:`drivers.keyboard_x11`): XInput2 raw key events of one X input
  device (``x11:all`` for every keyboard), stamped by the X server. Needs only a reachable X
  display; works under Xvfb.
- ``evdev:/dev/input/eventN`` (:mod:`drivers.keyboard_evdev`): the Linux input device itself,
  stamped by the kernel. Needs read access to the device node (the ``input`` group); works
  without X (Wayland, a console) and can grab the device.

Typical use::

    from drivers.keyboard import list_keyboards, open_keyboard

    for kb in list_keyboards():
        print(kb.spec, "-", kb.detail)
    with open_keyboard("x11:Virtual core XTEST keyboard", queue.put) as kb:
        ...  # key events arrive in the queue; kb.clock_mapping goes into the session file

This module is Qt-free and imports its backends only when one is opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from data_schema.errors import RecallLabError, SourceError

log = logging.getLogger(__name__)

SPEC_FORMS = "x11:<device name>, x11:all or evdev:/dev/input/eventN"


@dataclass(frozen=True)
class KeyEvent:
    """One key going down or up on the participant's keyboard.

    Attributes
    ----------
    key
        Lower-case key name as protocols write them: ``"1"``, ``"3"``, ``"a"``, ``"space"``,
        ``"return"``, ``"up"``, ``"escape"``...
    down
        True for a press, False for a release.
    timestamp
        When the device (X server or kernel) saw the event, in LSL seconds
        (:func:`drivers.clock.local_clock`).
    repeat
        The device says this press is an auto-repeat of a held key (never counted as a
        press). Only evdev can tell; X11 raw events carry no repeats at all.
    device
        Name of the device the event came from.
    """

    key: str
    down: bool
    timestamp: float
    repeat: bool
    device: str


@dataclass(frozen=True)
class KeyboardInfo:
    """A keyboard that :func:`open_keyboard` can open.

    Attributes
    ----------
    spec
        What to pass to :func:`open_keyboard`: ``"x11:<device name>"`` or
        ``"evdev:/dev/input/eventN"``.
    name
        The device's name.
    backend
        ``"x11"`` or ``"evdev"``.
    detail
        One line for people: device id, attachment, what kind of device.
    """

    spec: str
    name: str
    backend: str
    detail: str


class ParticipantKeyboard:
    """A keyboard read by a background thread that calls ``on_event`` for each key event.

    Subclasses (one per backend) implement :meth:`_setup`, :meth:`_read` and
    :meth:`_teardown`; all three run in the reader thread, so the device handle (an X
    connection, a file descriptor) is used by that thread only.

    ``on_event`` is called from the reader thread. It must be cheap and thread-safe (put the
    event in a :class:`queue.Queue`, or emit a Qt signal, which is queued across threads):
    while it runs no other event is read. An exception it raises is logged and the reader
    carries on.

    Parameters
    ----------
    info
        The device being read.
    on_event
        Called with every :class:`KeyEvent`, in the device's order.
    """

    #: How long the reader blocks waiting for input; bounds how long :meth:`close` takes.
    poll_interval_s = 0.05
    #: How long :meth:`start` waits for the reader thread to open the device.
    start_timeout_s = 10.0

    def __init__(self, info: KeyboardInfo, on_event: Callable[[KeyEvent], None]):
        self.info = info
        self._on_event = on_event
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._clock_mapping: dict[str, Any] = {}
        #: Why the reader stopped on its own (the device or display went away), else None.
        self.error: str | None = None

    # ------------------------------------------------------------------ public
    @property
    def clock_mapping(self) -> dict[str, Any]:
        """How device times were mapped onto the LSL clock (JSON-able; store it with events).

        Keys: ``device_clock`` (what the device stamps with), ``offset_s``
        (``lsl = device_time + offset_s``), ``method`` (how the offset was obtained) and
        backend-specific measurements. Complete once :meth:`start` has returned.
        """
        return dict(self._clock_mapping)

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ParticipantKeyboard:
        """Open the device in the reader thread and start delivering events.

        Returns once the device is open and selected, so no event after this call is missed.

        Raises
        ------
        RecallLabError
            The device could not be opened (the reader thread has then ended).
        """
        if self._thread is not None:
            if self._stop.is_set():
                raise RuntimeError(f"keyboard {self.info.spec} was closed; open it again")
            return self
        self._thread = threading.Thread(
            target=self._run, name=f"keyboard-{self.info.backend}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            self.close()
            raise SourceError(
                f"keyboard {self.info.spec}: the device did not open within "
                f"{self.start_timeout_s:g} s; check that it is still connected"
            )
        if self._start_error is not None:
            self._thread.join(1.0)
            err = self._start_error
            if isinstance(err, RecallLabError):
                raise err
            raise SourceError(f"keyboard {self.info.spec}: could not open it ({err})") from err
        return self

    def close(self) -> None:
        """Stop reading and release the device; waits up to about 0.5 s for the thread.

        Calling it again, or before :meth:`start`, does nothing. A closed keyboard cannot be
        started again: open a new one.
        """
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join(max(0.5, 4 * self.poll_interval_s))
            if thread.is_alive():
                log.warning("keyboard %s: reader thread did not stop in time", self.info.spec)

    def __enter__(self) -> ParticipantKeyboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.info.spec} {state}>"

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        try:
            self._setup()
        except BaseException as exc:  # handed to start(), which raises it in the caller
            self._start_error = exc
            self._ready.set()
            self._safe_teardown()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not self._read(self.poll_interval_s):
                    break
        except Exception as exc:  # a broken reader must say so, not die silently
            self.error = f"reader failed: {exc}"
            log.exception("keyboard %s: reader failed", self.info.spec)
        finally:
            self._safe_teardown()

    def _safe_teardown(self) -> None:
        try:
            self._teardown()
        except Exception:
            log.exception("keyboard %s: closing the device failed", self.info.spec)

    def _deliver(self, event: KeyEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            log.exception("keyboard %s: on_event raised for %s", self.info.spec, event)

    def _setup(self) -> None:
        """Open the device, fill ``self._clock_mapping``; raise RecallLabError on failure."""
        raise NotImplementedError

    def _read(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for input and deliver it; False ends the reader."""
        raise NotImplementedError

    def _teardown(self) -> None:
        """Release whatever :meth:`_setup` opened (also after a failed setup)."""
        raise NotImplementedError


def list_keyboards() -> list[KeyboardInfo]:
    """Keyboards that can be opened here: X11 input devices, then readable evdev devices.

    X11 devices are listed when ``$DISPLAY`` is reachable; evdev devices when this user may
    read them and they have number keys. Never raises: a backend that fails lists nothing.
    """
    found: list[KeyboardInfo] = []
    try:
        from drivers.keyboard_x11 import list_x11_keyboards

        found += list_x11_keyboards()
    except Exception as exc:
        log.debug("no X11 keyboards: %s", exc)
    try:
        from drivers.keyboard_evdev import list_evdev_keyboards

        found += list_evdev_keyboards()
    except Exception as exc:
        log.debug("no evdev keyboards: %s", exc)
    return found


def open_keyboard(
    spec: str, on_event: Callable[[KeyEvent], None], *, grab: bool = False
) -> ParticipantKeyboard:
    """The keyboard ``spec`` names, ready to :meth:`~ParticipantKeyboard.start`.

    Parameters
    ----------
    spec
        ``x11:<device name>`` (``xinput list`` shows the names), ``x11:all`` or
        ``evdev:/dev/input/eventN``; :func:`list_keyboards` gives the specs available here.
    on_event
        Called from the reader thread with every :class:`KeyEvent`; must be cheap.
    grab
        Take the device for this process alone, so its keys stop reaching the focused
        window (evdev: ``EVIOCGRAB``; X11: an active XInput2 grab of the device).

    Returns
    -------
    ParticipantKeyboard
        Not started yet; use it as a context manager or call ``start()`` and ``close()``.

    Raises
    ------
    RecallLabError
        The spec is malformed, the display cannot be reached, or the device does not exist
        or cannot be read; the message says what to do.
    """
    spec = (spec or "").strip()
    kind, sep, target = spec.partition(":")
    if kind == "x11" and sep and target.strip():
        from drivers.keyboard_x11 import X11Keyboard

        return X11Keyboard.open(target.strip(), on_event, grab=grab)
    if kind == "evdev" and sep and target.strip():
        from drivers.keyboard_evdev import EvdevKeyboard

        return EvdevKeyboard.open(target.strip(), on_event, grab=grab)
    raise SourceError(
        f"keyboard '{spec}' is not a keyboard spec: write {SPEC_FORMS} "
        "(drivers.keyboard.list_keyboards() lists the ones here)"
    )
