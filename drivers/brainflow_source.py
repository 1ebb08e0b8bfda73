"""BrainFlow boards as sources: any board by name or id, the synthetic board by default.

BrainFlow stamps samples in UNIX time; they are mapped onto the LSL clock with an offset
measured when the board starts (:class:`drivers.clock.UnixToLslMapping`), and the mapping is
stored with the stream. The board's marker row becomes events; its other rows (accelerometer,
battery...) stay out of the EEG data, and the board description kept in the stream's
``description`` says which rows exist.

The playback-file board (``brainflow:playback_file?file=rec.csv&master_board=<id>``) replays
a file that BrainFlow recorded. By default it keeps the file's own sample times
(``old_timestamps``), shifted as a whole onto the LSL clock so the first sample falls when
playback started: intervals between samples are exactly the recorded ones, and the original
UNIX time of any sample is ``lsl - offset`` with the stored offset. It plays the file once
(``loopback_false``) and the source finishes at the end of the file. ``loop=true`` plays it
over and over with fresh timestamps instead (recorded times would run backwards at each loop).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from data_schema.errors import SourceError
from data_schema.types import Event, StreamInfo
from drivers.base import Source
from drivers.clock import UnixToLslMapping, local_clock

log = logging.getLogger(__name__)

#: BrainFlowInputParams fields a user can set with ``?name=value``.
INPUT_PARAMS = (
    "serial_port",
    "mac_address",
    "ip_address",
    "ip_address_aux",
    "ip_address_anc",
    "ip_port",
    "ip_port_aux",
    "ip_port_anc",
    "ip_protocol",
    "other_info",
    "timeout",
    "serial_number",
    "file",
    "file_aux",
    "file_anc",
    "master_board",
)
_INT_PARAMS = {"ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout", "master_board"}

#: recall-lab's own options for the playback-file board (not BrainFlowInputParams fields).
PLAYBACK_OPTIONS = ("loop", "timestamps")

PLAYBACK_FILE_BOARD = -3
STREAMING_BOARD = -2

#: What each board family needs to connect (BrainFlow's "Supported Boards" page; BrainFlow
#: itself does not expose this). Keys are BoardIds names without ``_BOARD``.
CONNECTION_HINTS: dict[str, str] = {
    "synthetic": "nothing",
    "playback_file": "file=<BrainFlow .csv>, master_board=<id of the recording board>",
    "streaming": "ip_address=<multicast ip>, ip_port=<port>, master_board=<id>",
    "cyton": "serial_port=<dongle port, e.g. /dev/ttyUSB0>",
    "cyton_daisy": "serial_port=<dongle port>",
    "ganglion": "serial_port=<dongle port>; optional mac_address, timeout",
    "ganglion_native": "optional mac_address, serial_number",
    "cyton_wifi": "ip_port=<free local port>; optional ip_address (WiFi shield)",
    "cyton_daisy_wifi": "ip_port=<free local port>; optional ip_address (WiFi shield)",
    "ganglion_wifi": "ip_port=<free local port>; optional ip_address (WiFi shield)",
    "galea": "optional ip_address",
    "unicorn": "optional serial_number",
    "brainbit": "optional serial_number, timeout",
    "brainbit_bled": "serial_port=<BLED112 port>; optional mac_address",
    "callibri_eeg": "optional other_info, timeout",
    "notion_1": "optional serial_number",
    "notion_2": "optional serial_number",
    "crown": "optional serial_number",
    "muse_2": "optional mac_address or serial_number (device name)",
    "muse_s": "optional mac_address or serial_number (device name)",
    "muse_2016": "optional mac_address or serial_number (device name)",
    "muse_s_athena": "optional mac_address or serial_number (device name)",
    "muse_2_bled": "serial_port=<BLED112 port>; optional serial_number",
    "muse_s_bled": "serial_port=<BLED112 port>; optional serial_number",
    "muse_2016_bled": "serial_port=<BLED112 port>; optional serial_number",
    "enophone": "optional mac_address",
    "explore_4_chan": "optional mac_address",
    "explore_8_chan": "optional mac_address",
    "freeeeg32": "serial_port=<port>",
    "freeeeg128": "serial_port=<port>",
    "emotibit": "optional ip_address, serial_number",
    "neuropawn_knight": "serial_port=<port>",
    "pieeg": "serial_port=<spi device>",
}

# What went wrong, by BrainFlow exit code name, in words a user can act on.
_FAILURES = {
    "UNABLE_TO_OPEN_PORT_ERROR": "could not open its port or device",
    "PORT_ALREADY_OPEN_ERROR": "its port is already in use by another program",
    "SER_PORT_ERROR": "its serial port could not be set up",
    "BOARD_NOT_READY_ERROR": "it did not answer (is it switched on and in range?)",
    "INVALID_ARGUMENTS_ERROR": "its connection parameters are missing or wrong",
    "UNSUPPORTED_BOARD_ERROR": "BrainFlow does not support it on this system",
    "ANOTHER_BOARD_IS_CREATED_ERROR": "another program or source already holds it",
    "SYNC_TIMEOUT_ERROR": "it timed out while connecting",
    "BOARD_WRITE_ERROR": "a command could not be sent to it",
    "INITIAL_MSG_ERROR": "it answered with an unexpected first message",
}


def _brainflow():
    """Import brainflow without its pkg_resources deprecation warning (it needs setuptools<81)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import brainflow.board_shim
        import pkg_resources  # noqa: F401 - brainflow imports it lazily when a board loads

    return brainflow.board_shim


def _board_ids() -> dict[str, int]:
    """Board name (lower case, without ``_BOARD``) -> id, every board but ``NO_BOARD``."""
    BoardIds = _brainflow().BoardIds
    return {
        n.removesuffix("_BOARD").lower(): int(b.value)
        for n, b in BoardIds.__members__.items()
        if n != "NO_BOARD"
    }


def resolve_board_id(board: str | int) -> int:
    """Board id from an int, a numeric string, or a name like ``synthetic`` or ``CYTON_BOARD``."""
    ids = _board_ids()
    if isinstance(board, int) or str(board).strip().lstrip("-").isdigit():
        value = int(board)
        if value not in ids.values():
            raise SourceError(
                f"BrainFlow has no board with id {value}; 'recall-lab boards' lists them"
            )
        return value
    key = str(board).strip().lower().replace("-", "_").removesuffix("_board")
    if key in ids:
        return ids[key]
    raise SourceError(
        f"unknown BrainFlow board {board!r}: use a name such as synthetic, cyton, ganglion, "
        "playback_file, or a numeric board id (see 'recall-lab boards')"
    )


def board_names() -> list[str]:
    """Names accepted by :func:`resolve_board_id`."""
    return sorted(_board_ids())


def board_name(board_id: int) -> str:
    """The lower-case name of a board id (``-1`` -> ``synthetic``)."""
    for name, value in _board_ids().items():
        if value == board_id:
            return name
    return str(board_id)


def list_boards() -> list[dict[str, object]]:
    """Every BrainFlow board: name, id, sampling rate, EEG channel count, connection needs.

    Rate and channel counts come from BrainFlow's board descriptions; the playback and
    streaming boards take them from their ``master_board``, so theirs are empty.
    """
    BoardShim = _brainflow().BoardShim
    rows = []
    for name, board_id in sorted(_board_ids().items(), key=lambda kv: kv[1]):
        row: dict[str, object] = {"name": name, "id": board_id, "rate": None}
        row["eeg_channels"] = None
        try:
            desc = BoardShim.get_board_descr(board_id)
            if board_id in (PLAYBACK_FILE_BOARD, STREAMING_BOARD):
                raise ValueError("described by its master board")
            row["rate"] = desc.get("sampling_rate")
            row["eeg_channels"] = len(desc.get("eeg_channels", []))
            row["device"] = desc.get("name", "")
        except Exception:  # playback/streaming boards have no description of their own
            row["device"] = ""
        row["needs"] = CONNECTION_HINTS.get(name, "see BrainFlow's Supported Boards page")
        rows.append(row)
    return rows


def _connection_failure(board: str, board_id: int, params: Mapping[str, str], exc) -> str:
    """One line saying why a board did not connect and what it needs."""
    from brainflow.exit_codes import BrainFlowExitCodes

    try:
        code = BrainFlowExitCodes(exc.exit_code).name
    except (ValueError, AttributeError):
        code = "GENERAL_ERROR"
    why = _FAILURES.get(code, "BrainFlow reported an error")
    where = ", ".join(f"{k}={v}" for k, v in params.items() if k != "other_info")
    hint = CONNECTION_HINTS.get(board_name(board_id))
    needs = f"; it needs {hint}" if hint and hint != "nothing" else ""
    return (
        f"BrainFlow board {board} did not connect: {why} ({code}"
        f"{', ' + where if where else ''}); check that it is on, paired and plugged in{needs}"
    )


def _parse_bool(value: str, key: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SourceError(f"{key}={value!r} is not true/false; write {key}=true or {key}=false")


def _scan_playback_file(
    path: Path, ts_row: int, marker_row: int | None
) -> tuple[int, float, list[tuple[int, str]]]:
    """Rows, first timestamp and markers ``(row index, value)`` of a BrainFlow CSV.

    BrainFlow's playback board overwrites the marker row with markers inserted live, so the
    recorded markers are read here and emitted as playback passes their rows.
    """
    if path.stat().st_size == 0:
        raise SourceError(f"playback file {path} is empty")
    n_rows, first_ts, markers = 0, None, []
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            fields = line.split(b"\t") if b"\t" in line else line.split(b",")
            if first_ts is None:
                try:
                    first_ts = float(fields[ts_row])
                except (IndexError, ValueError):
                    raise SourceError(
                        f"{path} is not a BrainFlow recording of this master_board (no "
                        f"timestamp in column {ts_row + 1}); give the right master_board"
                    ) from None
            if marker_row is not None and marker_row < len(fields):
                try:
                    value = float(fields[marker_row])
                except ValueError:
                    value = 0.0
                if value:
                    markers.append((n_rows, f"{value:g}"))
            n_rows += 1
    if first_ts is None:
        raise SourceError(f"playback file {path} is empty")
    return n_rows, first_ts, markers


class BrainFlowSource(Source):
    """Stream a BrainFlow board's EEG rows; its marker row becomes events.

    Parameters
    ----------
    board
        Board name or id; ``synthetic`` (the default) needs no hardware.
    params
        BrainFlowInputParams fields (``serial_port``, ``ip_address``, ``mac_address``, ``file``,
        ``master_board``...). For the playback-file board give ``file`` and ``master_board``,
        and optionally ``loop=true`` or ``timestamps=playback`` (fresh times instead of the
        recorded ones).
    name
        Stream name.
    """

    #: Behind a slow disk, samples are taken off the board into memory (up to 1 GiB or
    #: 360 s) rather than left to fill BrainFlow's ring, which overwrites its oldest rows.
    max_spill_bytes = 2**30

    def __init__(
        self,
        board: str | int = "synthetic",
        params: Mapping[str, str] | None = None,
        *,
        name: str = "eeg",
        **kwargs: float,
    ) -> None:
        super().__init__(**kwargs)
        self.board_spec = board
        self.params = dict(params or {})
        self.name = name
        self._board = None
        self._mapping: UnixToLslMapping | None = None
        self._playback: dict[str, object] | None = None
        self._expected: int | None = None  # rows a playback file holds, unless it loops
        self._file_rows = 0
        self._file_markers: list[tuple[int, str]] = []  # (row in the file, value)
        self._delivered = 0

    @property
    def clock_mapping(self) -> dict[str, object]:
        if self._playback is not None:
            return dict(self._playback)
        return self._mapping.as_dict() if self._mapping else {"clock": "lsl"}

    def _input_params(self, board_id: int):
        inp = _brainflow().BrainFlowInputParams()
        for key, value in self.params.items():
            if key in PLAYBACK_OPTIONS:
                if board_id != PLAYBACK_FILE_BOARD:
                    raise SourceError(f"{key}= is an option of the playback_file board only")
                continue
            if key not in INPUT_PARAMS:
                raise SourceError(
                    f"unknown BrainFlow parameter {key!r}; allowed: {', '.join(INPUT_PARAMS)}"
                )
            if key in _INT_PARAMS:
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise SourceError(
                        f"BrainFlow parameter {key}={value!r} must be a whole number"
                    ) from None
            setattr(inp, key, value if key in _INT_PARAMS else str(value))
        return inp

    def _data_board(self, board_id: int) -> int:
        """The board whose data layout and rate apply (the master of playback/streaming)."""
        if board_id not in (PLAYBACK_FILE_BOARD, STREAMING_BOARD):
            return board_id
        if "master_board" not in self.params:
            raise SourceError(
                f"the {board_name(board_id)} board needs ?master_board=<name or id of the "
                "board that recorded the data>, e.g. master_board=synthetic"
            )
        master = resolve_board_id(self.params["master_board"])
        self.params["master_board"] = str(master)
        return master

    def _connect(self) -> StreamInfo:
        bf = _brainflow()
        BoardShim, BrainFlowError = bf.BoardShim, bf.BrainFlowError
        BoardShim.disable_board_logger()
        board_id = resolve_board_id(self.board_spec)
        data_board = self._data_board(board_id)
        inp = self._input_params(board_id)
        ts_row = BoardShim.get_timestamp_channel(data_board)
        loop = False
        recorded_times = False
        if board_id == PLAYBACK_FILE_BOARD:
            loop = _parse_bool(self.params.get("loop", "false"), "loop")
            stamps = self.params.get("timestamps", "playback" if loop else "recorded")
            if stamps not in ("recorded", "playback"):
                raise SourceError(f"timestamps={stamps!r}: use timestamps=recorded or playback")
            if loop and stamps == "recorded":
                raise SourceError(
                    "loop=true cannot keep the recorded timestamps (they would run backwards "
                    "at each loop); drop timestamps=recorded"
                )
            recorded_times = stamps == "recorded"
            path = Path(self.params.get("file", ""))
            if not self.params.get("file") or not path.is_file():
                raise SourceError(
                    f"playback file {str(path) if self.params.get('file') else '(none)'} not "
                    "found; give ?file=<BrainFlow .csv>&master_board=<board>"
                )
            try:
                marker_row = BoardShim.get_marker_channel(data_board)
            except BrainFlowError:
                marker_row = None
            n_rows, first_ts, self._file_markers = _scan_playback_file(path, ts_row, marker_row)
            self._file_rows = n_rows
            self._expected = None if loop else n_rows
        board = BoardShim(board_id, inp)
        try:
            board.prepare_session()
            if board_id == PLAYBACK_FILE_BOARD:
                board.config_board("loopback_true" if loop else "loopback_false")
                board.config_board("old_timestamps" if recorded_times else "new_timestamps")
            board.start_stream(450_000)
        except BrainFlowError as exc:
            try:
                board.release_session()
            except BrainFlowError:
                pass
            raise SourceError(
                _connection_failure(str(self.board_spec), board_id, self.params, exc)
            ) from None
        started = local_clock()
        self._board = board
        self._mapping = UnixToLslMapping.measure()
        if recorded_times:
            self._playback = {
                "clock": "lsl",
                "from": "recorded_unix",
                "method": "lsl = recorded + offset; the first recorded sample is placed when "
                "playback started",
                "offset": started - first_ts,
                "first_recorded_unix": first_ts,
                "file": str(path),
            }
        desc = BoardShim.get_board_descr(data_board)
        self._eeg_rows = list(BoardShim.get_eeg_channels(data_board))
        self._ts_row = ts_row
        try:
            self._marker_row: int | None = BoardShim.get_marker_channel(data_board)
        except BrainFlowError:
            self._marker_row = None
        try:
            names = BoardShim.get_eeg_names(data_board)
        except BrainFlowError:
            names = []
        if len(names) != len(self._eeg_rows):
            names = [f"EEG{i + 1}" for i in range(len(self._eeg_rows))]
        n = len(names)
        return StreamInfo(
            name=self.name,
            channel_names=list(names),
            channel_types=["eeg"] * n,
            units=["uV"] * n,
            nominal_rate=float(BoardShim.get_sampling_rate(data_board)),
            stream_type="EEG",
            source=f"brainflow:{desc.get('name', self.board_spec)}",
            description={
                "library": "brainflow",
                "board_id": board_id,
                "board": board_name(board_id),
                "data_board_id": data_board,
                "board_name": desc.get("name", ""),
                "params": {k: v for k, v in self.params.items() if k != "other_info"},
                # which rows hold what (accelerometer, battery...), kept for whoever needs them
                "board_description": desc,
            },
        )

    def _to_lsl(self, stamps: np.ndarray) -> np.ndarray:
        if self._playback is not None:
            return np.asarray(stamps, np.float64) + float(self._playback["offset"])
        return self._mapping.to_lsl(stamps)

    def _pull(self, max_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        # Oldest first; what does not fit stays in the board's own buffer for the next pull.
        data = self._board.get_board_data(max_samples)
        if data.shape[1] == 0:
            if self._expected is not None and self._delivered >= self._expected:
                self.finish()
            return None
        first = self._delivered
        self._delivered += data.shape[1]
        ts = self._to_lsl(data[self._ts_row])
        if self._marker_row is not None:
            for i in np.flatnonzero(data[self._marker_row]):
                self.emit(
                    Event(float(ts[i]), "brainflow", "marker", f"{data[self._marker_row, i]:g}")
                )
        if self._file_markers:
            self._emit_file_markers(first, ts)
        return data[self._eeg_rows].T.astype(np.float32), ts

    def _emit_file_markers(self, first: int, ts: np.ndarray) -> None:
        """Markers of a playback file whose rows are in this chunk (rows ``first...``)."""
        n, end = self._file_rows, first + len(ts)
        for row, value in self._file_markers:
            k = max(0, (first - row + n - 1) // n)  # first pass of the file reaching ``row``
            while (g := k * n + row) < end:
                self.emit(Event(float(ts[g - first]), "brainflow", "marker", value))
                k += 1

    def _disconnect(self) -> None:
        BrainFlowError = _brainflow().BrainFlowError

        if self._board is None:
            return
        try:
            self._board.stop_stream()
        except BrainFlowError:
            pass
        try:
            self._board.release_session()
        except BrainFlowError:
            pass
        self._board = None
