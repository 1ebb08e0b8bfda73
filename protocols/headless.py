"""Run a protocol without a screen: a live source, the recorder, the engine and a simulated
participant, in real time on the LSL clock. ``recall-lab demo`` and the tests use it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from data_schema.errors import RecallLabError
from data_schema.types import Event
from protocols.engine import ProtocolEngine, expand_protocol
from protocols.model import PreferencePhase, Protocol, RecallPhase
from protocols.reconstructions import Reconstruction, preference_attrs

if TYPE_CHECKING:
    from drivers.base import Source
    from drivers.camera import CameraSource

log = logging.getLogger(__name__)


@dataclass
class HeadlessResult:
    """What a headless run did."""

    path: Path
    state: str
    seconds: float
    samples: dict[str, int]
    samples_lost: dict[str, int]
    events: Counter = field(default_factory=Counter)
    participant: dict[str, int] = field(default_factory=dict)
    memories_written: int = 0
    error: str = ""  # why the run stopped early, if it did

    def summary(self) -> str:
        """A few lines for the terminal."""
        ev = self.events
        lines = [
            f"wrote {self.path} ({self.state}, {self.seconds:.1f} s)",
            "  streams: "
            + ", ".join(
                f"{k} {v} samples (lost {self.samples_lost.get(k, 0)})"
                for k, v in self.samples.items()
            ),
            f"  phases: {ev['protocol/phase_start']} started, {ev['protocol/phase_end']} ended",
            f"  keys: {ev['keyboard/key_down']} presses ({ev['keyboard/key_up']} releases; "
            f"{self.participant.get('auto_repeats', 0)} auto-repeats counted, not presses); "
            "valence changes "
            f"{ev['participant/valence_state']}",
            f"  memories: {ev['participant/description_submitted']} descriptions, "
            f"{ev['participant/sketch_submitted']} sketches "
            f"({self.participant.get('sketch_points', 0)} points), "
            f"{ev['participant/melody_submitted']} melodies, "
            f"{ev['participant/sam_valence'] + ev['participant/sam_arousal']} SAM ratings",
        ]
        return "\n".join(lines)


def uses_continuous_valence(protocol: Protocol) -> float | None:
    """The rating rate if any recall phase reports continuous valence, or a preference phase
    rates valence while its videos play, else ``None``."""
    for q in protocol.simple_phases():
        if isinstance(q, PreferencePhase) and q.rate_valence:
            return protocol.valence.rate
        if isinstance(q, RecallPhase):
            cfg = q.valence or protocol.valence
            if cfg.mode == "continuous":
                return cfg.rate
    return None


def run_headless(
    protocol: Protocol,
    out: str | Path,
    *,
    source: Source,
    participant_id: str = "SIM001",
    seed: int = 0,
    time_scale: float = 1.0,
    tick_interval: float = 0.02,
    event_sinks: list[Callable[[Event], None]] | None = None,
    base_dir: str | Path | None = None,
    notes: str = "",
    progress: Callable[[str], None] | None = None,
    camera: CameraSource | None = None,
    microphone: Source | None = None,
    reconstructions: Mapping[str, Reconstruction] | None = None,
) -> HeadlessResult:
    """Record ``source`` while a simulated participant goes through ``protocol``.

    Parameters
    ----------
    protocol
        The protocol as written; it is run ``time_scale`` times as long.
    out
        New session file (never overwritten).
    source
        The EEG source (e.g. BrainFlow's synthetic board); opened here.
    participant_id
        Pseudonym stored in the file.
    seed
        Seed of the simulated participant.
    event_sinks
        Extra receivers of every event written (e.g. an LSL marker outlet's ``push_event``).
    progress
        Called with a line at every phase change.
    camera, microphone
        Optional: the participant's face (:class:`drivers.camera.CameraSource`, stored as
        ``/videos/<name>``) and voice (:class:`drivers.microphone.MicrophoneSource`, a stream),
        recorded beside the EEG; opened here, before the file exists.
    reconstructions
        What ``preference`` phases show, per memory
        (:func:`protocols.reconstructions.load_reconstructions`).
    """
    from data_schema.recorder import Recorder
    from data_schema.writer import SessionWriter
    from drivers.clock import local_clock
    from protocols.simulated import SimulatedParticipant
    from protocols.storage import MemoryWriter
    from protocols.valence_source import ValenceSource

    scaled = protocol.scaled(time_scale) if time_scale != 1.0 else protocol
    # Every memory a preference phase judges must have its videos: checked before any file.
    expand_protocol(
        scaled, base_dir=base_dir, participant_id=participant_id, reconstructions=reconstructions
    )
    devices = [d for d in (source, camera, microphone) if d is not None]
    try:
        for dev in devices:
            dev.open()  # fail on a device before a file exists
        writer = SessionWriter(
            out,
            participant_id=participant_id,
            protocol=protocol.label,
            notes=notes,
            attrs={"protocol_time_scale": float(time_scale), **preference_attrs(reconstructions)},
        )
    except BaseException:
        for dev in devices:
            dev.stop()  # release the devices when the file cannot be created
        raise
    sources: dict[str, Source] = {"eeg": source}
    if microphone is not None:
        sources[microphone.info.name] = microphone
    rate = uses_continuous_valence(scaled)
    valence = ValenceSource(rate) if rate else None
    if valence is not None:
        sources["valence"] = valence
    cameras = {camera.info.name: camera} if camera is not None else {}
    recorder = Recorder(writer, sources, event_sinks=event_sinks, frame_sources=cameras)
    memories = MemoryWriter(writer)

    def changed(display) -> None:
        if progress is not None and display.kind:
            mem = f" [{display.memory_id}]" if display.memory_id else ""
            progress(f"{display.step_index + 1}/{display.n_steps} {display.phase_id}{mem}")

    engine = ProtocolEngine(
        scaled,
        emit=recorder.add_event,
        store=memories.put,
        valence_samples=valence.push if valence is not None else None,
        on_change=changed,
        base_dir=base_dir,
        participant_id=participant_id,
        reconstructions=reconstructions,
    )
    participant = SimulatedParticipant(engine, seed=seed, time_scale=time_scale)

    def gate() -> None:
        """Camera and microphone record only when the protocol's ``capture`` says so."""
        d = engine.display()
        for dev, key in ((camera, "camera"), (microphone, "microphone")):
            if dev is not None and hasattr(dev, "set_recording"):
                dev.set_recording(d.capture[key], at=d.capture_since.get(key))

    started = time.monotonic()
    stopped_by = ""
    try:
        gate()
        recorder.start()
        time.sleep(min(0.5, 2 * tick_interval + 0.1))  # some EEG before the first marker
        engine.start(local_clock())
        while not engine.done:
            now = local_clock()
            participant.act(now)
            engine.tick(now)
            gate()
            if recorder.error is not None or source.error is not None:
                stopped_by = str(recorder.error or source.error)
                engine.abort(local_clock(), reason=stopped_by)
                break
            time.sleep(tick_interval)
        gate()
        time.sleep(min(0.5, 2 * tick_interval + 0.1))  # EEG after the last marker
    except KeyboardInterrupt:
        engine.abort(local_clock(), reason="interrupted")
        raise
    finally:
        memories.close()
        recorder.stop()
    if recorder.error is not None:
        raise recorder.error
    if memories.error is not None:
        raise RecallLabError(f"{memories.error}; everything else is in {out}")
    status = recorder.status()
    return HeadlessResult(
        path=Path(out),
        state=engine.state,
        seconds=time.monotonic() - started,
        samples=status.samples_written,
        samples_lost=status.samples_lost,
        events=Counter(f"{e.source}/{e.label}" for e in engine.events),
        participant=dict(participant.log),
        memories_written=memories.written,
        error=stopped_by,
    )
