"""Write the engine's memory records (descriptions, sketches, melodies) off the GUI thread.

:class:`MemoryWriter` is the engine's ``store``: :meth:`MemoryWriter.put` queues a record and
returns at once; a background thread writes it through the :class:`SessionWriter` (which is
thread-safe and shared with the recorder). :func:`write_record` is the same without a thread.
"""

from __future__ import annotations

import logging
import queue
import threading

from data_schema.errors import RecallLabError
from data_schema.writer import SessionWriter
from protocols.engine import (
    DescriptionSubmitted,
    MelodyAudio,
    MemoryRecord,
    MemoryStarted,
    SketchFinished,
    SketchPoints,
)

log = logging.getLogger(__name__)


def write_record(writer: SessionWriter, record: MemoryRecord) -> None:
    """Write one memory record into ``/memories/<memory_id>``."""
    if isinstance(record, MemoryStarted):
        writer.memory_group(
            record.memory_id, cue=record.cue, index=record.index, started=record.timestamp
        )
    elif isinstance(record, DescriptionSubmitted):
        writer.set_description(
            record.memory_id, record.text, record.timestamp, submitted=record.submitted
        )
    elif isinstance(record, SketchPoints):
        writer.add_sketch_points(record.memory_id, record.points)
    elif isinstance(record, SketchFinished):
        writer.set_sketch_image(
            record.memory_id,
            record.png,
            record.timestamp,
            width=record.width,
            height=record.height,
            submitted=record.submitted,
        )
    elif isinstance(record, MelodyAudio):
        writer.append_melody(
            record.memory_id,
            record.audio,
            sample_rate=record.sample_rate,
            origin=record.origin,
            start_timestamp=record.start_timestamp,
        )
    else:
        raise TypeError(f"not a memory record: {type(record).__name__}")


class MemoryWriter:
    """Queue memory records and write them on a background thread.

    Parameters
    ----------
    writer
        The session's open writer (the recorder closes it; call :meth:`close` first).

    Attributes
    ----------
    error
        The first error writing a record (e.g. disk full), or ``None``. Later records are
        still attempted, so one bad record does not lose the others.
    """

    def __init__(self, writer: SessionWriter) -> None:
        self.writer = writer
        self.error: RecallLabError | None = None
        self.written = 0
        self._queue: queue.Queue[MemoryRecord | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="memory-writer", daemon=True)
        self._thread.start()

    def put(self, record: MemoryRecord) -> None:
        """Queue ``record`` (returns at once; safe from any thread)."""
        self._queue.put(record)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            log.error("memory writer did not finish within %.0f s", timeout)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                write_record(self.writer, record)
                self.written += 1
            except RecallLabError as exc:
                log.error("could not store %s: %s", type(record).__name__, exc)
                if self.error is None:
                    self.error = exc
            except Exception as exc:  # keep the thread alive for the records that follow
                log.exception("could not store %s", type(record).__name__)
                if self.error is None:
                    self.error = RecallLabError(f"could not store {type(record).__name__}: {exc}")
