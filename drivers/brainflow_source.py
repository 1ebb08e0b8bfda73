"""BrainFlow boards as sources: any board by name or id, the synthetic board by default.

BrainFlow stamps samples in UNIX time; they are mapped onto the LSL clock with an offset
measured when the board starts (:class:`drivers.clock.UnixToLslMapping`), and the mapping is
stored with the stream. The board's marker row becomes events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from data_schema.errors import SourceError
from data_schema.types import Event, StreamInfo
from drivers.base import Source
from drivers.clock import UnixToLslMapping

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


def _brainflow():
    """Import brainflow without its pkg_resources deprecation warning (it needs setuptools<81)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import brainflow.board_shim
        import pkg_resources  # noqa: F401 - brainflow imports it lazily when a board loads

    return brainflow.board_shim


def resolve_board_id(board: str | int) -> int:
    """Board id from an int, a numeric string, or a name like ``synthetic`` or ``CYTON_BOARD``."""
    BoardIds = _brainflow().BoardIds

    if isinstance(board, int) or str(board).lstrip("-").isdigit():
        value = int(board)
        if value not in {b.value for b in BoardIds}:
            raise SourceError(f"BrainFlow has no board with id {value}")
        return value
    key = str(board).strip().upper().replace("-", "_")
    for cand in (key, f"{key}_BOARD"):
        if cand in BoardIds.__members__:
            return int(BoardIds[cand].value)
    raise SourceError(
        f"unknown BrainFlow board {board!r}: use a name such as synthetic, cyton, ganglion, "
        "playback_file, or a numeric board id (see 'recall-lab boards')"
    )


def board_names() -> list[str]:
    """Names accepted by :func:`resolve_board_id`."""
    BoardIds = _brainflow().BoardIds

    return sorted(n.removesuffix("_BOARD").lower() for n in BoardIds.__members__)


class BrainFlowSource(Source):
    """Stream a BrainFlow board's EEG rows; its marker row becomes events.

    Parameters
    ----------
    board
        Board name or id; ``synthetic`` (the default) needs no hardware.
    params
        BrainFlowInputParams fields (``serial_port``, ``ip_address``, ``mac_address``, ``file``,
        ``master_board``...). For the playback-file board give ``file`` and ``master_board``.
    name
        Stream name.
    """

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

    @property
    def clock_mapping(self) -> dict[str, object]:
        return self._mapping.as_dict() if self._mapping else {"clock": "lsl"}

    def _connect(self) -> StreamInfo:
        bf = _brainflow()
        BoardShim, BrainFlowError, BrainFlowInputParams = (
            bf.BoardShim,
            bf.BrainFlowError,
            bf.BrainFlowInputParams,
        )
        BoardShim.disable_board_logger()
        board_id = resolve_board_id(self.board_spec)
        inp = BrainFlowInputParams()
        for key, value in self.params.items():
            if key not in INPUT_PARAMS:
                raise SourceError(
                    f"unknown BrainFlow parameter {key!r}; allowed: {', '.join(INPUT_PARAMS)}"
                )
            setattr(inp, key, int(value) if key in _INT_PARAMS else str(value))
        data_board = board_id
        if board_id in (-3, -4):  # PLAYBACK_FILE_BOARD, STREAMING_BOARD: described by master
            if "master_board" not in self.params:
                raise SourceError(
                    "the playback/streaming board needs ?master_board=<id of the recording board>"
                )
            data_board = int(self.params["master_board"])
        board = BoardShim(board_id, inp)
        try:
            board.prepare_session()
            board.start_stream(450_000)
        except BrainFlowError as exc:
            try:
                board.release_session()
            except BrainFlowError:
                pass
            raise SourceError(
                f"BrainFlow board {self.board_spec} failed to connect ({exc}); check that it is "
                "on, paired and that the connection parameters are right"
            ) from None
        self._board = board
        self._mapping = UnixToLslMapping.measure()
        desc = BoardShim.get_board_descr(data_board)
        self._eeg_rows = list(BoardShim.get_eeg_channels(data_board))
        self._ts_row = BoardShim.get_timestamp_channel(data_board)
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
                "data_board_id": data_board,
                "board_name": desc.get("name", ""),
                "params": {k: v for k, v in self.params.items() if k != "other_info"},
            },
        )

    def _pull(self) -> tuple[np.ndarray, np.ndarray] | None:
        data = self._board.get_board_data()
        if data.shape[1] == 0:
            return None
        ts = self._mapping.to_lsl(data[self._ts_row])
        if self._marker_row is not None:
            for i in np.flatnonzero(data[self._marker_row]):
                self.emit(
                    Event(float(ts[i]), "brainflow", "marker", f"{data[self._marker_row, i]:g}")
                )
        return data[self._eeg_rows].T.astype(np.float32), ts

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
