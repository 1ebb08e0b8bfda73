"""The experimenter console: source, live scope, session controls, event log, offline jobs.

The window composes small panels (``app/widgets``) and wires them to a Qt-free
:class:`~app.session_controller.SessionController`. Slow work never runs in a slot: connecting
a source happens on a worker thread, acquisition and writing have their own threads, and the
panels refresh from timers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from app.participant import ParticipantWindow
from app.participant_input import ParticipantInput
from app.protocol_runner import ProtocolRunner, free_key_valence
from app.scope import ScopeWidget
from app.scope_feed import DisplayFilter, ScopeFeed
from app.session_controller import SessionController, open_capture
from app.session_names import earlier_sessions, next_session_file
from app.settings import AppSettings
from app.widgets.capture_panel import CapturePanel, level_db
from app.widgets.display_panel import DisplayPanel
from app.widgets.event_log import EventLogView
from app.widgets.jobs_panel import JobsPanel
from app.widgets.participant_panel import ParticipantPanel, place_participant
from app.widgets.session_panel import SessionPanel, human_bytes
from app.widgets.source_panel import SourcePanel
from app.widgets.stall_banner import StallBanner
from data_schema.errors import RecallLabError
from data_schema.types import Event
from drivers.clock import local_clock
from protocols.headless import uses_continuous_valence
from protocols.reconstructions import preference_attrs, preference_run

log = logging.getLogger(__name__)

#: Seconds of EEG recorded after a protocol's last marker before the file is closed.
PROTOCOL_TAIL_S = 0.5

#: Camera preview and microphone level refresh (ms): at most 5 Hz, a glance, not a monitor.
LIVE_CAPTURE_MS = 100
#: Seconds of audio the level meter measures.
LEVEL_WINDOW_S = 0.2


#: Events drawn on the scope's traces (key presses would crowd it; they are in the log).
SCOPE_EVENTS = frozenset(
    {"marker", "note", "phase_start", "gap_start", "gap_end", "samples_lost", "paused", "resumed"}
)


def scope_label(e: Event) -> str:
    """A few words for an event's line on the scope."""
    if e.label == "phase_start":
        try:
            return str(json.loads(e.value).get("phase", "phase"))
        except (ValueError, AttributeError):
            return "phase"
    if e.label == "marker":
        return f"marker {e.value}"[:24]
    return e.label


class ConsoleWindow(QtWidgets.QMainWindow):
    """The experimenter's window. It owns the participant window.

    Parameters
    ----------
    settings
        Where settings persist (tests pass their own).
    controller
        The session controller (default: a new one).
    """

    TITLE = "recall-lab: experimenter console"

    source_connected = QtCore.pyqtSignal(object, str)  # StreamInfo or None, error text
    recording_stopped = QtCore.pyqtSignal(str)  # file path
    _keyboards_listed = QtCore.pyqtSignal(list)  # drivers.keyboard.KeyboardInfo (worker -> GUI)
    _closed = QtCore.pyqtSignal(object, object)  # path or None, error or None (worker -> GUI)
    # recording plan, camera, microphone, error text (worker -> GUI)
    _capture_opened = QtCore.pyqtSignal(object, object, object, str)

    def __init__(
        self,
        settings: AppSettings | None = None,
        controller: SessionController | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(self.TITLE)
        self.setAccessibleName("experimenter console")
        self.statusBar().setAccessibleName("Status bar")
        self.settings = settings or AppSettings()
        self.controller = controller or SessionController()
        self.participant = ParticipantWindow()
        self.participant.confirm_close = self._confirm_participant_close
        self.participant.closed.connect(self._participant_closed)
        # Every key of every window of the app goes through this filter first.
        self.input = ParticipantInput(self.participant, parent=self)
        self._free_held: dict[str, int] = {}  # free keys down -> auto-repeats seen
        self.runner: ProtocolRunner | None = None
        self.feed: ScopeFeed | None = None
        self.last_file: Path | None = None
        self._connecting = False
        self._protocol = None
        self._reconstructions = None
        self._markers = 0
        self._stall_seen = False
        self._scope_evpos = 0
        self._protocol_dir: Path | None = None
        self._closing = False
        self._opening_capture = False  # devices are being opened for a recording
        self._preview_seen = 0  # frames the camera tap had taken at the last preview
        self.preview_frames = 0  # previews drawn (this recording)
        self._capture_shown = (False, False)  # what the participant's indicator says

        s = self.settings
        self.source_panel = SourcePanel(s)
        self.display_panel = DisplayPanel(s)
        self.session_panel = SessionPanel(s)
        self.session_panel.set_protocols(_builtin_protocols())
        self.capture_panel = CapturePanel(s)
        self.participant_panel = ParticipantPanel(s)
        # Listing input devices talks to the X server and opens device files: off this thread.
        self._keyboards_listed.connect(self.participant_panel.set_keyboards)
        threading.Thread(target=self._list_keyboards, name="list-keyboards", daemon=True).start()
        self.jobs_panel = JobsPanel(s)
        self.scope = ScopeWidget()
        self.scope.set_window(s.get("scope/window"))
        self.scope.set_scale(s.get("scope/scale"))
        self.event_log = EventLogView()
        self.event_log.follow(self.controller.log)

        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        for w in (
            self.source_panel,
            self.display_panel,
            self.session_panel,
            self.capture_panel,
            self.participant_panel,
            self.jobs_panel,
        ):
            ll.addWidget(w)
        ll.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(500)
        self.stall_banner = StallBanner()
        scope_box = QtWidgets.QWidget()
        sb = QtWidgets.QVBoxLayout(scope_box)
        sb.setContentsMargins(0, 0, 0, 0)
        sb.addWidget(self.stall_banner)
        sb.addWidget(self.scope, 1)
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(scope_box)
        right.addWidget(self.event_log)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        split = QtWidgets.QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)
        self.statusBar().showMessage("Choose a source and connect.")
        geometry = s.get("window/geometry")
        if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)

        self.source_panel.connect_requested.connect(self.connect_source)
        self.source_panel.disconnect_requested.connect(self.disconnect_source)
        self.source_connected.connect(self._on_connected)
        self.display_panel.changed.connect(self._display_changed)
        self.display_panel.auto_button.clicked.connect(self.auto_scale)
        self.display_panel.spectrum.toggled.connect(self.scope.show_spectrum)
        self.scope.show_spectrum(self.display_panel.spectrum.isChecked())
        sp = self.session_panel
        sp.record_requested.connect(self.start_recording)
        sp.stop_requested.connect(self._stop_clicked)
        sp.note_added.connect(self._note_added)
        sp.marker_requested.connect(self._marker)
        self._closed.connect(self._recording_closed)
        self._capture_opened.connect(self._capture_ready)
        sp.protocol_start.connect(self.start_protocol)
        sp.protocol_pause.connect(lambda paused: self.runner and self.runner.pause(paused))
        sp.protocol_skip.connect(lambda: self.runner and self.runner.skip())
        sp.protocol_abort.connect(self.abort_protocol)
        self.input.key.connect(self._key)
        self.participant_panel.show_requested.connect(self.show_participant)
        for b in self.findChildren(QtWidgets.QAbstractButton):
            # Console buttons are clicked, never triggered from the keyboard: a participant's
            # space or enter must not press whichever button was clicked last.
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            if isinstance(b, QtWidgets.QPushButton):
                b.setAutoDefault(False)
                b.setDefault(False)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.setInterval(250)
        self.status_timer.timeout.connect(self.refresh_status)
        self.status_timer.start()
        self.live_timer = QtCore.QTimer(self)
        self.live_timer.setInterval(LIVE_CAPTURE_MS)
        self.live_timer.timeout.connect(self.refresh_capture)
        self.live_timer.start()

    def _list_keyboards(self) -> None:  # worker thread
        keyboards = _participant_keyboards()
        try:
            self._keyboards_listed.emit(keyboards)
        except RuntimeError:  # the console closed meanwhile
            pass

    # ------------------------------------------------------------------ source
    def connect_source(self, spec: str) -> None:
        """Connect ``spec`` on a worker thread; :attr:`source_connected` reports the result."""
        if self._connecting:
            return
        self._connecting = True
        self.source_panel.connect_button.setEnabled(False)
        self.statusBar().showMessage(f"connecting {spec}…")
        self._close_feed()

        def work() -> None:
            try:
                info = self.controller.connect(spec)
                self.source_connected.emit(info, "")
            except RecallLabError as exc:
                self.source_connected.emit(None, str(exc))
            except Exception as exc:  # a driver bug must not take the console down
                log.exception("connecting %s", spec)
                self.source_connected.emit(None, f"could not connect {spec}: {exc}")

        threading.Thread(target=work, name="connect", daemon=True).start()

    def _on_connected(self, info: object, error: str) -> None:
        self._connecting = False
        if info is None:
            self.source_panel.set_connected(False)
            self.statusBar().showMessage(error)
            self._warn("Could not connect", error)
        else:
            src = self.controller.source
            self.feed = ScopeFeed(src, display_filter=self._display_filter())
            self.scope.attach(self.feed, info.channel_names)
            QtCore.QTimer.singleShot(1500, self.auto_scale)
            self.source_panel.set_connected(True)
            self.statusBar().showMessage(
                f"connected: {info.source or info.name}, {info.n_channels} channels at "
                f"{info.nominal_rate:g} Hz"
            )
        self._update_buttons()

    def disconnect_source(self) -> None:
        try:
            self._close_feed()
            self.controller.disconnect()
        except RecallLabError as exc:
            self._warn("Cannot disconnect", str(exc))
        self.source_panel.set_connected(self.controller.connected)
        if not self.controller.connected:
            # Nothing the old source said may stay on screen as if it were still true.
            self.display_panel.clear_source()
            self.statusBar().showMessage("disconnected")
        self._update_buttons()

    def _close_feed(self) -> None:
        self.scope.detach()
        if self.feed is not None:
            self.feed.close()
            self.feed = None

    def _display_filter(self) -> DisplayFilter:
        dp = self.display_panel
        return DisplayFilter(highpass=dp.highpass.value(), notch=dp.notch.currentData())

    def auto_scale(self) -> None:
        """Fit the channels into their rows (button, and once after connecting)."""
        scale = self.scope.auto_scale()
        self.display_panel.scale.setValue(scale)

    def _display_changed(self) -> None:
        self.scope.set_window(self.display_panel.window.value())
        self.scope.set_scale(self.display_panel.scale.value())
        if self.feed is not None:
            self.feed.set_filter(self._display_filter())

    # ------------------------------------------------------------------ recording
    def start_recording(self) -> Path | None:
        """The Record button: check the session, then open the capture devices (if any, on a
        worker) and create the file.

        Returns the new file's path when it was created at once (no camera or microphone to
        open); with devices to open it returns ``None`` and the recording starts once they
        are open (or is refused, with one message, if one cannot be opened).
        """
        if self._opening_capture or self.controller.recording:
            return None
        v = self.session_panel.values()
        capture = self.capture_panel.values()
        out_dir = Path(str(v["out_dir"])).expanduser()
        try:
            if not v["participant"]:
                raise RecallLabError("enter the participant's pseudonym code (e.g. P001)")
            protocol = self._load_protocol(str(v["protocol"]), float(v["time_scale"]))
            reconstructions = self._check_reconstructions(
                protocol, str(v["reconstructions"]), str(v["participant"])
            )
            earlier = earlier_sessions(out_dir, str(v["participant"]))
            if not self._another_session_confirmed(out_dir, str(v["participant"]), earlier):
                return None
            target = next_session_file(
                out_dir, str(v["participant"]), str(v["protocol"]), earlier=earlier
            )
            target.parent.mkdir(parents=True, exist_ok=True)  # a study's sub-*/ses-*/ too
        except (RecallLabError, OSError) as exc:
            self._warn("Cannot start recording", str(exc))
            return None
        plan = {
            "target": target,
            "session": v,
            "capture": capture,
            "protocol": protocol,
            "reconstructions": reconstructions,
        }
        camera, microphone = str(capture["camera"]), str(capture["microphone"])
        if not (camera or microphone):
            return self._begin_recording(plan)
        # Opening a camera reads its first frame and a microphone measures its clock: never on
        # the GUI thread. Nothing exists yet, so a device that cannot be opened costs nothing.
        self._opening_capture = True
        opening = [n for n, d in (("the camera", camera), ("the microphone", microphone)) if d]
        self.statusBar().showMessage(f"opening {' and '.join(opening)}…")
        self._update_buttons()

        def work() -> None:
            try:
                cam, mic = open_capture(camera, microphone)
                error = ""
            except RecallLabError as exc:
                cam = mic = None
                error = str(exc)
            except Exception as exc:  # a driver bug must not take the console down
                log.exception("opening the camera/microphone")
                cam = mic = None
                error = f"could not open the camera/microphone: {type(exc).__name__}: {exc}"
            try:
                self._capture_opened.emit(plan, cam, mic, error)
            except RuntimeError:  # the console is gone
                _stop_devices(cam, mic)

        threading.Thread(target=work, name="open-capture", daemon=True).start()
        return None

    def _capture_ready(self, plan: dict, camera, microphone, error: str) -> None:
        """The worker opened the devices (or could not): start the recording, or refuse it."""
        self._opening_capture = False
        if error:
            # A demanding experimenter chose this device and the participant consented: a
            # session recorded silently without it would be a lost session, so none is started.
            self._update_buttons()
            self._warn(
                "Cannot start recording",
                f"{error}. Nothing was recorded: connect the device, or choose none (or leave "
                "its consent unticked) to record without it.",
            )
            return
        if self._closing or not self.controller.connected or self.controller.recording:
            _stop_devices_later(camera, microphone)
            self._update_buttons()
            return
        self._begin_recording(plan, camera, microphone)

    def _begin_recording(self, plan: dict, camera=None, microphone=None) -> Path | None:
        """Create the file and start the recorder (with the opened capture devices)."""
        v, capture, protocol = plan["session"], plan["capture"], plan["protocol"]
        try:
            input_attrs = self.input.open_device(str(self.participant_panel.values()["keyboard"]))
            path = self.controller.start_recording(
                plan["target"],
                participant=str(v["participant"]),
                notes=str(v["notes"]),
                protocol=protocol.label if protocol is not None else "",
                valence_rate=uses_continuous_valence(protocol) if protocol is not None else None,
                attrs={
                    "participant_input": json.dumps(input_attrs),
                    # What the participant agreed to for this session; a stream without
                    # consent was not recorded (its device was not even opened).
                    "consent_video": bool(capture["consent_video"]),
                    "consent_audio": bool(capture["consent_audio"]),
                    **preference_attrs(plan["reconstructions"]),
                },
                camera=camera,
                microphone=microphone,
            )
        except (RecallLabError, OSError) as exc:
            self.input.close_device()
            _stop_devices_later(camera, microphone)
            self._update_buttons()
            self._warn("Cannot start recording", str(exc))
            return None
        self._protocol = protocol
        self._reconstructions = plan["reconstructions"]
        self._markers = 0
        self._preview_seen = 0
        self.preview_frames = 0
        self.session_panel.phase.setText("–")  # the last session's phase is not this one's
        self.session_panel.progress.setText("–")
        self.session_panel.file.setText(str(path))
        self._show_capture(camera is not None, microphone is not None)
        self.statusBar().showMessage(f"recording to {path}{_capture_note(capture)}")
        self._update_buttons()
        return path

    def _another_session_confirmed(
        self, out_dir: Path, participant: str, earlier: list[Path]
    ) -> bool:
        """Ask before a pseudonym that already has session files (``earlier``) in the folder
        is reused (a typo, or the previous participant's code left in place, would mix two
        people)."""
        if not earlier:
            return True
        n = len(earlier)
        return self.session_panel.confirm(
            f"{participant} already has sessions",
            f"{out_dir} already holds {n} session file{'s' if n > 1 else ''} of {participant} "
            f"(the latest: {earlier[-1].name}). Record another session of {participant}?",
        )

    def _note_added(self, text: str, started: float, added: float) -> None:
        """The experimenter's note, at the time its typing began (when it was noticed)."""
        if self.controller.recording:
            value = json.dumps({"text": text, "added": added}, ensure_ascii=False)
            self.controller.add_event(Event(started, "experimenter", "note", value))

    def _marker(self, t: float) -> None:
        if self.controller.recording:
            self._markers += 1
            self.controller.add_event(Event(t, "experimenter", "marker", str(self._markers)))
            self.statusBar().showMessage(f"marker {self._markers} at {t:.3f} s (LSL)")

    def _stop_clicked(self) -> None:
        """The Stop button: during a protocol, stopping aborts it, so ask first."""
        runner = self.runner
        if runner is not None and not runner.engine.done:
            phase = runner.engine.display().phase_id or "–"
            if not self.session_panel.confirm(
                "Stop the recording?",
                f"The protocol is running (phase {phase}). Stopping the recording aborts it; "
                "everything recorded so far stays in the file. Stop now?",
            ):
                return
        self.stop_recording(wait=False)

    def _check_reconstructions(self, protocol, spec: str, participant: str):
        """For a protocol with a preference phase: the reconstructions it shows, read and
        checked before any file exists (one message when they are missing)."""
        from protocols.engine import expand_protocol
        from protocols.reconstructions import load_reconstructions

        run = preference_run(protocol) if protocol is not None else None
        if run is None:
            return None
        if not spec:
            raise RecallLabError(
                "this protocol's preference phase shows a participant's reconstructions: "
                "choose the session whose `recall-lab generate --control` run made them "
                "(Reconstructions)"
            )
        recs = load_reconstructions(Path(spec).expanduser(), run)
        expand_protocol(
            protocol,
            base_dir=self._protocol_dir,
            participant_id=participant,
            reconstructions=recs,
        )
        return recs

    def _load_protocol(self, spec: str, time_scale: float):
        if not spec or spec == "none":
            return None
        from protocols.loader import load_protocol, resolve_protocol

        protocol = load_protocol(resolve_protocol(spec))
        self._protocol_dir = resolve_protocol(spec).parent
        return protocol.scaled(time_scale) if time_scale != 1.0 else protocol

    def start_protocol(self) -> None:
        if not self.controller.recording or self.runner is not None:
            return
        if self._protocol is None:
            self._warn("No protocol", "Choose a protocol before recording to run one.")
            return
        self.runner = ProtocolRunner(
            self._protocol,
            self.controller,
            self.participant,
            base_dir=self._protocol_dir,
            melody_dir=self.settings.get("participant/melody_dir"),
            reconstructions=self._reconstructions,
            horizon=self.input.horizon,
            parent=self,
        )
        self.runner.changed.connect(self._phase_changed)
        self.runner.finished.connect(self._protocol_finished)
        self.runner.text_box.connect(self.input.set_text_box)
        if not self.participant.isVisible():
            self.show_participant()
        self.input.set_protocol_running(True)
        self.runner.start()
        self.statusBar().showMessage(
            "protocol running: every key goes to the participant's protocol, whichever window "
            "has focus"
        )
        self._update_buttons()

    def abort_protocol(self) -> None:
        if self.runner is not None:
            self.runner.abort()

    def _phase_changed(self, d) -> None:
        memory = f" ({d.memory_id})" if d.memory_id else ""
        self.session_panel.phase.setText(
            f"{d.step_index + 1}/{d.n_steps} {d.phase_id}{memory} – {d.state}"
            if d.phase_id
            else d.state
        )

    def _protocol_finished(self, how: str) -> None:
        self.input.set_protocol_running(False)
        self.statusBar().showMessage(f"protocol {how}; the recording is stopping")
        # Keep recording a moment past the last marker, so the final phase's EEG (still in
        # flight from the device) is complete in the file, as the headless runner does.
        writer = self.controller.writer

        def stop_if_same_recording() -> None:
            if self.controller.recording and self.controller.writer is writer:
                self.stop_recording(wait=False)

        QtCore.QTimer.singleShot(int(PROTOCOL_TAIL_S * 1000), stop_if_same_recording)

    def stop_recording(self, *, wait: bool = True) -> Path | None:
        """Stop the protocol (if any) and close the file properly.

        With ``wait=False`` (the Stop button, the protocol's end) the file is closed on a
        worker thread, so the GUI never waits on the disk; :attr:`recording_stopped` is
        emitted once it is closed. With ``wait=True`` this returns the closed file's path.
        """
        self.session_panel.commit_note()  # a note being written is never lost
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.finished.disconnect(self._protocol_finished)
            if not runner.engine.done:
                runner.abort()  # the file gets phase_end/session_end with reason "abort"
            runner.close()
        self.input.set_protocol_running(False)
        self.participant.melody.stop_recording()
        self.input.close_device()
        finish = self.controller.begin_stop()
        if finish is None:
            self._update_buttons()
            return None
        if wait:
            path, error = _finish_recording(finish)
            self._recording_closed(path, error)
            return path
        self.session_panel.file.setText("closing the file…")
        self._update_buttons()

        def work() -> None:
            self._closed.emit(*_finish_recording(finish))

        threading.Thread(target=work, name="close-recording", daemon=True).start()
        return None

    def _recording_closed(self, path: Path | None, error: str | None) -> None:
        self._show_capture(False, False)  # the devices are stopped by now
        self.capture_panel.new_session()  # consent is asked again for the next session
        if error is not None:
            self._warn("Recording stopped with an error", error)
        if path is not None:
            self.last_file = Path(path)
            self.session_panel.file.setText(f"{path} (closed)")
            self.session_panel.new_session()  # the next session is someone's until said
            self.statusBar().showMessage(f"saved {path}")
            self.jobs_panel.set_recording(self.last_file)
            self.recording_stopped.emit(str(path))
        self._update_buttons()

    # ------------------------------------------------------------------ participant
    def show_participant(self) -> None:
        """Show (or re-open) the participant display where the experimenter set it."""
        v = self.participant_panel.values()
        index, fullscreen = place_participant(
            self,
            self.participant,
            int(v["screen"]),
            bool(v["fullscreen"]),
            confirm_cover=lambda: self.session_panel.confirm(
                "Cover the console?",
                "The participant display is set to full screen on the console's own screen: "
                "it will hide the console until the participant display is closed or moved. "
                "Go full screen anyway?",
            ),
        )
        if self.controller.recording:
            self._display_event("participant_display_shown", fullscreen=fullscreen, screen=index)

    def _confirm_participant_close(self) -> bool:
        if self.runner is None or self.runner.engine.done or self._closing:
            return True
        return self.session_panel.confirm(
            "Close the participant display?",
            "A protocol is running. Close the participant display? The protocol and the "
            "recording go on, and the display can be shown again with 'Show participant "
            "display'.",
        )

    def _participant_closed(self) -> None:
        if self.controller.recording:
            self._display_event("participant_display_closed")
        self.statusBar().showMessage(
            "the participant display was closed; 'Show participant display' opens it again"
        )

    def _display_event(self, label: str, **extra: object) -> None:
        phase = None
        if self.runner is not None and self.runner.engine.current is not None:
            phase = self.runner.engine.current.phase.id
        value = json.dumps({"phase": phase, **extra}, separators=(",", ":"))
        self.controller.add_event(Event(local_clock(), "app", label, value))

    def _key(self, t: float, key: str, down: bool, repeat: bool) -> None:
        if self.runner is not None and not self.runner.engine.done:
            self.runner.key(t, key, down, repeat)
            return
        # No protocol: free valence keys, one down and one up per press.
        if down:
            if key in self._free_held:
                self._free_held[key] += 1
                return
            if repeat:
                return  # held since before it could be seen
            self._free_held[key] = 0
            self.controller.key_event(t, key, free_key_valence(key), down=True)
        elif key in self._free_held:
            repeats = self._free_held.pop(key)
            self.controller.key_event(t, key, free_key_valence(key), down=False, repeats=repeats)

    # ------------------------------------------------------------------ status
    def _update_buttons(self) -> None:
        self.session_panel.set_state(
            connected=self.controller.connected,
            recording=self.controller.recording,
            running=self.runner is not None and not self.runner.engine.done,
        )
        self.source_panel.disconnect_button.setEnabled(
            self.controller.connected and not self.controller.recording
        )
        self.participant_panel.set_recording(self.controller.recording)
        self.capture_panel.set_recording(self.controller.recording, busy=self._opening_capture)
        if self._opening_capture:
            self.session_panel.record_button.setEnabled(False)

    def _show_capture(self, camera: bool, microphone: bool) -> None:
        """Tell the participant what records them (only when it changes)."""
        if (camera, microphone) != self._capture_shown:
            self._capture_shown = (camera, microphone)
            self.participant.set_capture(camera, microphone)

    def refresh_capture(self) -> None:
        """Timer slot: the camera's newest recorded frame and the microphone's level.

        Reads only what the recorder and the microphone's thread already hold in memory (a
        reference to the last JPEG, a snapshot of the ring buffer's last 0.2 s).
        """
        tap, mic = self.controller.camera, self.controller.microphone
        if tap is not None and tap.taken != self._preview_seen and tap.latest is not None:
            self._preview_seen = tap.taken
            if self.capture_panel.show_frame(tap.latest):
                self.preview_frames += 1
        if mic is not None and mic.buffer is not None:
            data, _ = mic.buffer.latest(int(LEVEL_WINDOW_S * mic.rate))
            self.capture_panel.show_level(level_db(data) if len(data) else None)

    def refresh_status(self) -> None:
        """Timer slot: rate, drops, quality, recording status, new events."""
        self.controller.poll_source_events()
        self.event_log.poll()
        events, self._scope_evpos = self.controller.log.read_since(self._scope_evpos)
        for e in events:
            if e.label in SCOPE_EVENTS:
                self.scope.add_event(e.timestamp, scope_label(e))
        st = self.controller.status()
        dropped = st.samples_lost + (self.feed.samples_dropped if self.feed else 0)
        self._show_stall(st)
        if st.source_state != "disconnected":
            self.display_panel.rate.setText(
                f"{st.rate:.1f} Hz received (nominal {st.nominal_rate:g}), {st.gaps} gap(s), "
                f"{dropped} dropped – {st.source_state}"
            )
            self.display_panel.show_quality(self.scope.flagged_channels())
        else:
            self.display_panel.clear_source()
        if st.recording:
            self._show_capture(st.camera_on, st.microphone_on)
            self.session_panel.progress.setText(
                f"{st.elapsed:.0f} s, {human_bytes(st.file_bytes)}, "
                f"{human_bytes(st.free_bytes)} free, {st.events_written} events"
                + (f" – {st.error}" if st.error else "")
            )
        elif st.error:
            self.session_panel.progress.setText(st.error)
        device_error = self.input.device_error()
        if device_error:
            self.statusBar().showMessage(
                f"participant keyboard stopped: {device_error}; keys now come from the app's "
                "windows"
            )

    def _show_stall(self, st) -> None:
        """The banner, the scope's overlay, and (if chosen) a pause and a beep on a stall."""
        stalled = st.source_state == "stalled"
        self.scope.set_stalled(stalled)
        if not stalled:
            if self._stall_seen:
                self._stall_seen = False
                self.stall_banner.clear_stall()
            return
        sp = self.session_panel
        runner = self.runner
        if not self._stall_seen:
            self._stall_seen = True
            if sp.beep_on_stall.isChecked():
                QtWidgets.QApplication.beep()
            if (
                sp.pause_on_stall.isChecked()
                and runner is not None
                and not runner.engine.done
                and not sp.pause_button.isChecked()
            ):
                sp.pause_button.setChecked(True)  # pauses the protocol, as the button does
                self.controller.add_event(
                    Event(local_clock(), "app", "protocol_paused_on_stall", st.source_label)
                )
        paused = runner is not None and sp.pause_button.isChecked()
        self.stall_banner.show_stall(st.source_label, st.stalled_for, protocol_paused=paused)

    def _warn(self, title: str, text: str) -> None:
        self.statusBar().showMessage(text)
        QtWidgets.QMessageBox.warning(self, title, text)

    # ------------------------------------------------------------------ closing
    def closeEvent(self, e: QtGui.QCloseEvent) -> None:
        self._closing = True
        if self.controller.recording and not self.session_panel.confirm(
            "Stop recording and quit?",
            "A session is being recorded. Stop the recording (the file is kept) and quit?",
        ):
            self._closing = False
            e.ignore()
            return
        if self.controller.recording:
            self.stop_recording()
        self.jobs_panel.shutdown()
        self.status_timer.stop()
        self.live_timer.stop()
        self._close_feed()
        self.controller.close()
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.sync()
        self.participant.close()
        e.accept()


def _participant_keyboards() -> list:
    """Keyboards that can be read directly (XInput2, evdev); none if the driver is missing."""
    try:
        from drivers.keyboard import list_keyboards
    except ImportError:
        return []
    try:
        return list_keyboards()
    except Exception:  # listing devices must never keep the console from opening
        log.exception("listing keyboards")
        return []


def _capture_note(capture: dict) -> str:
    """What the status bar adds about the face and voice when a recording starts."""
    on = [n for n, k in (("camera", "camera"), ("microphone", "microphone")) if capture[k]]
    note = f" with the {' and the '.join(on)}" if on else ""
    skipped = [
        f"no {what} (no consent)"
        for what, chosen, key in (
            ("video", "camera_chosen", "consent_video"),
            ("audio", "microphone_chosen", "consent_audio"),
        )
        if capture[chosen] and not capture[key]
    ]
    return note + (f"; {', '.join(skipped)}" if skipped else "")


def _stop_devices(*devices) -> None:
    for dev in devices:
        if dev is not None:
            try:
                dev.stop()
            except Exception:  # closing a broken device must not hide what went wrong
                log.exception("stopping %s", type(dev).__name__)


def _stop_devices_later(*devices) -> None:
    """Stop devices on a worker (closing a device may wait on it)."""
    if any(d is not None for d in devices):
        threading.Thread(
            target=_stop_devices, args=devices, name="stop-capture", daemon=True
        ).start()


def _builtin_protocols() -> list[str]:
    try:
        from protocols.loader import BUILTIN_PROTOCOLS
    except ImportError:
        return []
    return list(BUILTIN_PROTOCOLS)


def _finish_recording(finish: Callable[[], Path]) -> tuple[Path | None, str | None]:
    """Run a controller's ``finish`` and turn a user-facing error into its message."""
    try:
        return finish(), None
    except RecallLabError as exc:
        return None, str(exc)
    except Exception as exc:  # a bug must not leave the console "closing the file…" for ever
        log.exception("closing the recording")
        return None, f"closing the recording failed: {type(exc).__name__}: {exc}"
