"""Bring a foreign recording into a new recall-lab session file (``recall-lab import``).

Everything the loader (:mod:`data_schema.recordings`) finds is kept: every stream with its
samples, timestamps, channel labels, types, units and clock description, and every marker or
annotation as an event. The root attributes record where the file came from
(``imported_from``, ``import_format``). Identifying fields a foreign file may carry (subject
names, birthdays in EDF headers or ``info['subject_info']``) are never copied: the participant
is the pseudonym the user gives.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data_schema.errors import SessionExistsError, SessionFileError
from data_schema.reader import Session
from data_schema.writer import SessionWriter, check_pseudonym

#: Rows written per append, so progress moves and memory stays flat for long recordings.
CHUNK_ROWS = 65_536

Progress = Callable[[int, int], None]


def write_session(
    session: Session,
    out: str | Path,
    *,
    participant_id: str,
    protocol: str = "",
    notes: str = "",
    attrs: dict[str, object] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write ``session`` (streams and events) to a new session file ``out``.

    Parameters
    ----------
    session
        What :func:`data_schema.recordings.load_recording` returned.
    out
        The new ``.h5`` file; never overwritten.
    participant_id
        Pseudonym code stored in the file.
    attrs
        Extra root attributes (origin of the data).
    progress
        Called with ``(rows_done, rows_total)`` as samples are written.
    """
    out = Path(out)
    if out.exists():
        raise SessionExistsError(
            f"{out} already exists; recall-lab never overwrites a file: choose another --out"
        )
    try:
        check_pseudonym(participant_id)
    except ValueError as exc:
        raise SessionFileError(str(exc)) from None
    total = sum(s.n_samples for s in session.streams.values())
    done = 0
    writer = SessionWriter(
        out, participant_id=participant_id, protocol=protocol, notes=notes, attrs=attrs
    )
    try:
        for name, stream in session.streams.items():
            writer.add_stream(name, stream.info, clock=stream.clock_mapping or {"clock": "lsl"})
            n = min(stream.n_samples, stream.data.shape[0])
            for a in range(0, n, CHUNK_ROWS):
                b = min(n, a + CHUNK_ROWS)
                writer.append(name, stream.data[a:b], stream.timestamps[a:b])
                done += b - a
                if progress is not None:
                    progress(done, total)
        writer.add_events(session.events)
    finally:
        writer.close()
    if progress is not None:
        progress(total, total)
    return out


def import_recording(
    path: str | Path,
    out: str | Path,
    *,
    participant_id: str,
    progress: Progress | None = None,
) -> Session:
    """Read a foreign recording and write it as a new session file.

    Returns the loaded recording (so callers can report what was written). A recall-lab
    session given as input is copied (streams and events; memories are not imported).
    ``participant_id`` has no default: a foreign file never says which pseudonym it belongs
    to, and a silent placeholder would mix participants up.

    Channels are typed from their names and units and 10-05 names standardised
    (:func:`data_schema.recordings.type_channels`); each stream's ``description`` keeps
    ``original_channel_names`` and the ``channel_typing`` notes, plus ``filters`` and
    ``manufacturer`` as the source stated them.
    """
    from data_schema.recordings import load_recording

    src = Path(path)
    out = Path(out)
    if out.exists():
        raise SessionExistsError(
            f"{out} already exists; recall-lab never overwrites a file: choose another --out"
        )
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise SessionFileError(f"--out {out.name}: session files end in .h5; name it e.g. x.h5")
    if src.resolve() == out.resolve():
        raise SessionFileError("--out must differ from the input file")
    session = load_recording(src)
    fmt = str(session.attrs.get("import_format", "recall-lab"))
    write_session(
        session,
        out,
        participant_id=participant_id,
        protocol=str(session.attrs.get("protocol", "")),
        notes=f"imported from {src.name} ({fmt})",
        attrs={"imported_from": src.name, "import_format": fmt},
        progress=progress,
    )
    return session
