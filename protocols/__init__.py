"""Session protocols: the YAML format, its loader, and the Qt-free engine that runs them.

Typical use (the GUI does the same with its own inputs)::

    from protocols import ProtocolEngine, load_protocol

    protocol = load_protocol("protocols/rym_recall.yaml")
    engine = ProtocolEngine(protocol, emit=recorder.add_event, store=memory_writer.put)
    engine.start(local_clock())
    # on a 20-50 ms timer:            engine.tick(local_clock())
    # in the key handler:             engine.key_down("1", local_clock(), auto_repeat=False)
    # what to draw:                   engine.display()
"""

from protocols.engine import (
    DescriptionSubmitted,
    DisplayState,
    MelodyAudio,
    MemoryRecord,
    MemoryStarted,
    ProtocolEngine,
    SketchFinished,
    SketchPoints,
    Step,
    expand_protocol,
)
from protocols.loader import builtin_protocol_path, load_protocol, parse_protocol, resolve_protocol
from protocols.model import PROTOCOL_FORMAT_VERSION, MemoryCue, Protocol, ValenceConfig
from protocols.valence import ValenceChange, ValenceReporter, normalize_key

__all__ = [
    "PROTOCOL_FORMAT_VERSION",
    "DescriptionSubmitted",
    "DisplayState",
    "MelodyAudio",
    "MemoryCue",
    "MemoryRecord",
    "MemoryStarted",
    "Protocol",
    "ProtocolEngine",
    "SketchFinished",
    "SketchPoints",
    "Step",
    "ValenceChange",
    "ValenceConfig",
    "ValenceReporter",
    "builtin_protocol_path",
    "expand_protocol",
    "load_protocol",
    "normalize_key",
    "parse_protocol",
    "resolve_protocol",
]
