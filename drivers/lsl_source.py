"""LSL streams as sources: resolve one stream by name, type or source_id and record it.

liblsl corrects the sender's clock onto ours (``proc_clocksync``); the timestamps of a regular
stream are then dejittered by a line fit that restarts at every gap
(:class:`drivers.clock.Dejitter`) and kept monotonic, so samples land on this machine's LSL
clock like every other stream in the session. Marker streams (LSL type ``Markers`` or an
irregular rate) seen on the network are pulled in the same thread and become events
``Event(ts, "lsl:<stream name>", "marker", value)``.

If the sender stops, the base class marks a gap (``gap_start`` after ``stall_timeout``) and
liblsl keeps trying to reconnect (``recover=True``); when an outlet with the same
``source_id`` appears again, samples flow on and a ``gap_end`` event closes the gap. Streams
without a ``source_id`` cannot be recovered: the source then fails with a clear message,
keeping everything recorded until then.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from data_schema.errors import SourceError
from data_schema.types import UNITS_FROM_LSL, Event, StreamInfo
from drivers.base import RingBuffer, Source
from drivers.clock import Dejitter, configure_liblsl

log = logging.getLogger(__name__)

#: Ways to look up a stream, as ``lsl:<prop>=<value>``.
RESOLVE_PROPS = ("name", "type", "source_id")

#: recall-lab's own event outlets (``record --lsl-markers``): never read back as markers, which
#: would feed every event back into the file in a loop.
OWN_MARKER_PREFIX = "recall-lab-markers"

#: Marker streams as an XPath predicate over the stream's XML header.
MARKER_PREDICATE = "type='Markers' or nominal_srate=0"

# LSL channel types (XDF meta-data conventions) -> MNE channel types used in the file.
_MNE_TYPES = {
    "eeg": "eeg",
    "eog": "eog",
    "ecg": "ecg",
    "ekg": "ecg",
    "emg": "emg",
    "misc": "misc",
    "stim": "stim",
    "trigger": "stim",
    "resp": "resp",
    "gsr": "bio",
    "eda": "bio",
    "bio": "bio",
}
_NUMPY_FORMATS = {"float32", "double64", "int8", "int16", "int32", "int64"}


def _pylsl():
    configure_liblsl()
    import pylsl

    return pylsl


def _parse_bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SourceError(f"LSL option {key}={value!r} is not true/false; write {key}=true or false")


def _parse_float(value: object, key: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"LSL option {key}={value!r} is not a number of seconds") from None
    if not out > 0:
        raise SourceError(f"LSL option {key}={value!r} must be a positive number of seconds")
    return out


def _parse_markers(markers: str | Sequence[str] | None) -> str | list[str] | None:
    """``"auto"``, ``None`` (no marker streams) or a list of marker stream names."""
    if markers is None:
        return None
    if isinstance(markers, str):
        text = markers.strip()
        if text.lower() == "auto":
            return "auto"
        if text.lower() in ("", "none", "no", "off", "false"):
            return None
        return [m.strip() for m in text.split(",") if m.strip()]
    return [str(m) for m in markers]


def _channel_format(info) -> str:
    """The LSL channel format by name (``float32``, ``string``...)."""
    pylsl = _pylsl()
    names = {
        pylsl.cf_float32: "float32",
        pylsl.cf_double64: "double64",
        pylsl.cf_string: "string",
        pylsl.cf_int32: "int32",
        pylsl.cf_int16: "int16",
        pylsl.cf_int8: "int8",
        pylsl.cf_int64: "int64",
    }
    return names.get(info.channel_format(), "undefined")


def _describe(info) -> dict[str, object]:
    """The fields of an LSL stream header a lab wants to see in a list."""
    return {
        "name": info.name(),
        "type": info.type(),
        "channels": info.channel_count(),
        "rate": info.nominal_srate(),
        "format": _channel_format(info),
        "source_id": info.source_id(),
        "hostname": info.hostname(),
    }


def list_lsl_streams(timeout: float = 1.0) -> list[dict[str, object]]:
    """Streams visible on the network now (waits ``timeout`` seconds to hear them all).

    Returns
    -------
    list of dict
        One per stream, sorted by name: ``name``, ``type``, ``channels``, ``rate`` (0 for
        irregular streams), ``format``, ``source_id``, ``hostname``.
    """
    infos = _pylsl().resolve_streams(wait_time=timeout)
    return sorted((_describe(i) for i in infos), key=lambda d: (str(d["name"]), str(d["type"])))


def _visible_summary(timeout: float = 1.0) -> str:
    streams = list_lsl_streams(timeout)
    if not streams:
        return "no LSL streams are visible on this network"
    shown = ", ".join(f"{s['name']} ({s['type'] or 'no type'})" for s in streams[:10])
    more = f" and {len(streams) - 10} more" if len(streams) > 10 else ""
    return f"visible: {shown}{more}"


def _marker_value(sample: Sequence[object]) -> str:
    """One marker sample as text: the value itself, or a JSON list for multi-channel markers."""

    def one(v: object) -> object:
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    values = [one(v) for v in sample]
    if len(values) == 1:
        return str(values[0])
    return json.dumps(values)


def _direct_float32_pull(inlet) -> Callable[..., int] | None:
    """A pull that has liblsl fill given float32 arrays, or None if this pylsl cannot.

    pylsl's own ``pull_chunk(dest_obj=...)`` builds a new ctypes array type for every
    destination size, and ctypes keeps each one for the life of the process; ring-buffer slots
    come in every size, so liblsl's C function is called here with plain pointers instead.
    """
    try:
        import ctypes

        from pylsl.lib import lib
        from pylsl.util import handle_error

        pull_f, obj = lib.lsl_pull_chunk_f, inlet.obj
    except (ImportError, AttributeError):
        return None
    n_ch = inlet.channel_count
    errcode = ctypes.c_int()

    def pull(data: np.ndarray, ts: np.ndarray, timeout: float = 0.0) -> int:
        n = len(ts)
        if n == 0:
            return 0
        got = pull_f(
            obj,
            ctypes.c_void_p(data.ctypes.data),
            ctypes.c_void_p(ts.ctypes.data),
            ctypes.c_size_t(n * n_ch),
            ctypes.c_size_t(n),
            ctypes.c_double(timeout),
            ctypes.byref(errcode),
        )
        handle_error(errcode)
        return int(got) // n_ch

    return pull


class _MarkerInlet:
    """One marker stream pulled alongside the data stream.

    Connecting (and liblsl's first clock-offset estimate, which the first clock-corrected
    pull would otherwise wait for) takes about half a second, so it happens on a short-lived
    thread of its own; until :attr:`ready` is set, :meth:`pull` returns nothing and the
    acquisition thread never waits.
    """

    connect_timeout = 5.0

    def __init__(self, info) -> None:
        self.name = info.name()
        self.key = info.source_id() or info.uid()
        self.inlet = None
        self.lost = False
        self.ready = threading.Event()
        threading.Thread(
            target=self._open, args=(info,), name=f"lsl-markers-{self.name}", daemon=True
        ).start()

    def _open(self, info) -> None:
        pylsl = _pylsl()
        # Clock correction only: marker times are irregular, dejittering would move them.
        inlet = pylsl.StreamInlet(
            info, max_buflen=360, recover=True, processing_flags=pylsl.proc_clocksync
        )
        try:
            inlet.open_stream(timeout=self.connect_timeout)
            inlet.time_correction(timeout=self.connect_timeout)
        except Exception as exc:
            log.warning(
                "marker stream %s did not answer (%s); its markers are skipped", self.name, exc
            )
            self.lost = True
            return
        self.inlet = inlet
        self.ready.set()

    def pull(self) -> list[Event]:
        import pylsl.util

        if self.lost or not self.ready.is_set():
            return []
        try:
            samples, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=1024)
        except pylsl.util.TimeoutError:  # reconnecting: clock offset not known yet
            return []
        except pylsl.util.LostError:
            log.warning("marker stream %s was lost (it has no source_id to recover)", self.name)
            self.lost = True
            return []
        source = f"lsl:{self.name}"
        return [
            Event(float(t), source, "marker", _marker_value(s))
            for s, t in zip(samples, stamps, strict=True)
        ]

    def close(self) -> None:
        if self.inlet is None:
            return
        try:
            self.inlet.close_stream()
        except Exception as exc:  # closing a lost inlet may complain; nothing to keep
            log.debug("closing marker inlet %s: %s", self.name, exc)


class LslSource(Source):
    """Record one LSL stream, and the marker streams beside it as events.

    Parameters
    ----------
    prop
        How to find the stream: ``name``, ``type`` or ``source_id``.
    value
        The value ``prop`` must have. With several matches the first one found is used (its
        name and source_id are logged); give ``source_id`` to be exact.
    timeout
        Seconds to wait for the stream to appear.
    markers
        ``"auto"`` (default): every marker stream (type ``Markers`` or irregular rate) visible
        now or appearing during the recording; a list (or comma-separated text) of marker
        stream names; ``None`` or ``"none"``: no marker streams.
    name
        Stream name (``eeg`` by default, like the other sources, so gap events name the
        stream the file holds); the LSL name is kept in ``source`` and ``description``.
    max_buflen
        Seconds liblsl buffers on our side while nobody pulls (liblsl sets memory aside for
        them up front). Behind a slow disk the source keeps pulling into memory taken for the
        purpose (:attr:`Source.max_spill_bytes`), so this only covers a thread that cannot run.
    dejitter
        Smooth the timestamps of a regular stream (:class:`drivers.clock.Dejitter`); turn off
        to keep the sender's own (clock-corrected) timestamps.
    **kwargs
        :class:`drivers.base.Source` options (``buffer_seconds``, ``stall_timeout``,
        ``pull_interval``). Values may be text, as they come from a ``lsl:...?key=value``
        source spec.
    """

    marker_rescan_interval = 1.0
    # Dense streams (256 ch at 2 kHz in 20-sample chunks) arrive 100 times a second; taking
    # them at most 50 times a second halves the per-pull cost, 20 ms extra on the scope. The
    # recorder without a display (``recall-lab record``) pulls every 0.5 s, once per flush.
    default_pull_interval = 0.02
    #: Seconds a pull waits inside liblsl when nothing is waiting (then the loop checks
    #: markers, stalls and stop).
    quiet_wait = 0.02
    poll_interval = 0.0  # the pull itself waited
    #: Behind a slow disk the source keeps pulling into memory of its own (up to 1 GiB or
    #: 360 s), so liblsl's buffer (``max_buflen``) can stay small.
    max_spill_bytes = 2**30

    def __init__(
        self,
        prop: str = "name",
        value: str = "",
        *,
        timeout: float | str = 5.0,
        markers: str | Sequence[str] | None = "auto",
        name: str = "eeg",
        max_buflen: float | str = 30,
        dejitter: bool | str = True,
        **kwargs: float | str,
    ) -> None:
        if prop not in RESOLVE_PROPS:
            raise SourceError(
                f"cannot look up an LSL stream by {prop!r}; use one of {', '.join(RESOLVE_PROPS)}"
            )
        if not str(value):
            raise SourceError(f"give the LSL stream's {prop}, e.g. lsl:{prop}=<{prop}>")
        known = {"buffer_seconds", "stall_timeout", "pull_interval"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise SourceError(
                f"unknown LSL option(s) {', '.join(unknown)}; allowed: timeout, markers, name, "
                "max_buflen, dejitter, buffer_seconds, stall_timeout, pull_interval"
            )
        super().__init__(**{k: _parse_float(v, k) for k, v in kwargs.items()})
        self.prop = prop
        self.value = str(value)
        self.timeout = _parse_float(timeout, "timeout")
        self.markers = _parse_markers(markers)
        self.stream_name = name
        self.max_buflen = max(1, round(_parse_float(max_buflen, "max_buflen")))
        self.dejitter = _parse_bool(dejitter, "dejitter")
        self._dejitter: Dejitter | None = None
        self._last_ts = -np.inf
        self._inlet = None
        self._uid = ""
        self._marker_inlets: dict[str, _MarkerInlet] = {}
        self._resolver = None
        self._next_rescan = 0.0
        self._max_chunk = 1024
        self._time_correction: float | None = None
        self._direct: Callable[..., int] | None = None

    @property
    def lookup(self) -> str:
        """What is looked for, as the user wrote it (``name=MyAmp``)."""
        return f"{self.prop}={self.value}"

    @property
    def clock_mapping(self) -> dict[str, object]:
        method = "liblsl clock sync (time_correction)"
        if self._dejitter is not None:
            method += "; dejittered by a line fit per gap-free segment (drivers.clock.Dejitter)"
        mapping: dict[str, object] = {
            "clock": "lsl",
            "from": "lsl_sender",
            "method": method + "; monotonic",
        }
        if self._time_correction is not None:
            mapping["time_correction_at_connect"] = self._time_correction
        return mapping

    @property
    def marker_streams(self) -> list[str]:
        """Names of the marker streams being recorded now (connected and clock-corrected)."""
        return sorted(m.name for m in list(self._marker_inlets.values()) if m.ready.is_set())

    # ------------------------------------------------------------------ connect
    def _resolve(self):
        pylsl = _pylsl()
        found = pylsl.resolve_byprop(self.prop, self.value, minimum=1, timeout=self.timeout)
        if not found:
            raise SourceError(
                f"no LSL stream with {self.lookup} found within {self.timeout:g} s "
                f"({_visible_summary()}); start the sender or check the spelling"
            )
        if len(found) > 1:
            log.warning(
                "%d LSL streams have %s; using %s (source_id %r)",
                len(found),
                self.lookup,
                found[0].name(),
                found[0].source_id(),
            )
        return found[0]

    def _connect(self) -> StreamInfo:
        pylsl = _pylsl()
        found = self._resolve()
        fmt = _channel_format(found)
        if fmt == "string":
            raise SourceError(
                f"LSL stream {found.name()!r} carries text markers, not a signal; record an EEG "
                "stream and its markers are picked up as events (markers=auto)"
            )
        if fmt not in _NUMPY_FORMATS:
            raise SourceError(f"LSL stream {found.name()!r} has an unsupported format {fmt!r}")
        if not found.source_id():
            log.warning(
                "LSL stream %s has no source_id: if it stops it cannot be recovered",
                found.name(),
            )
        # liblsl corrects the clock offset; dejittering is ours (see drivers.clock.Dejitter
        # for why liblsl's is not used) and so is keeping timestamps monotonic after it.
        flags = pylsl.proc_clocksync
        inlet = pylsl.StreamInlet(
            found, max_buflen=self.max_buflen, recover=True, processing_flags=flags
        )
        try:
            inlet.open_stream(timeout=self.timeout)
            full = inlet.info(timeout=self.timeout)  # the header with its <desc>
            self._time_correction = float(inlet.time_correction(timeout=self.timeout))
        except Exception as exc:
            inlet.close_stream()
            raise SourceError(
                f"LSL stream {found.name()!r} was found but did not answer within "
                f"{self.timeout:g} s ({exc}); check the sender and the firewall"
            ) from None
        self._inlet = inlet
        self._direct = _direct_float32_pull(inlet) if fmt == "float32" else None
        self._uid = full.uid()
        rate = float(full.nominal_srate())
        self._max_chunk = int(max(1024, rate))
        if self.dejitter and rate > 0:
            self._dejitter = Dejitter(rate)
        if self.markers is not None:
            self._start_marker_search()
        return self._stream_info(full, fmt)

    def _stream_info(self, info, fmt: str) -> StreamInfo:
        n = info.channel_count()
        stream_type = info.type() or ""
        labels = info.get_channel_labels() or []
        types = info.get_channel_types() or []
        units = info.get_channel_units() or []
        names = [lab or f"Ch{i + 1}" for i, lab in enumerate(labels)] if labels else []
        if len(names) != n or len(set(names)) != n:
            names = [f"Ch{i + 1}" for i in range(n)]
        default_type = "eeg" if stream_type.lower() == "eeg" else "misc"
        if len(types) != n:
            types = [None] * n
        ch_types = [_MNE_TYPES.get(str(t or "").strip().lower(), default_type) for t in types]
        if len(units) != n:
            units = [None] * n
        ch_units = []
        for t, u in zip(ch_types, units, strict=True):
            text = str(u or "").strip()
            # An EEG channel without a unit is in microvolts by the XDF convention.
            fallback = "uV" if t in ("eeg", "eog", "ecg", "emg") else "a.u."
            ch_units.append(UNITS_FROM_LSL.get(text.lower(), text) if text else fallback)
        desc = {
            "library": "pylsl",
            "lsl_name": info.name(),
            "lsl_type": stream_type,
            "source_id": info.source_id(),
            "hostname": info.hostname(),
            "created_at": info.created_at(),
            "uid": info.uid(),
            "session_id": info.session_id(),
            "channel_format": fmt,
            "lsl_version": info.version(),
            "resolved_by": self.lookup,
        }
        manufacturer = info.desc().child_value("manufacturer")
        if manufacturer:
            desc["manufacturer"] = manufacturer
        return StreamInfo(
            name=self.stream_name,
            channel_names=names,
            channel_types=ch_types,
            units=ch_units,
            nominal_rate=float(info.nominal_srate()),
            stream_type=stream_type or "EEG",
            source=f"lsl:{info.name()}",
            description=desc,
        )

    # ------------------------------------------------------------------ markers
    def _start_marker_search(self) -> None:
        pylsl = _pylsl()
        if self.markers == "auto":
            pred = MARKER_PREDICATE
        else:
            pred = " or ".join(f"name='{m}'" for m in self.markers)
        # A continuous resolver keeps listening, so marker streams started after the
        # recording began are picked up too.
        self._resolver = pylsl.ContinuousResolver(pred=pred, forget_after=5.0)

    def _rescan_markers(self) -> None:
        for info in self._resolver.results():
            key = info.source_id() or info.uid()
            if key in self._marker_inlets or info.uid() == self._uid:
                continue
            if info.name().startswith(OWN_MARKER_PREFIX):
                continue
            if _channel_format(info) == "undefined":
                continue
            log.info("recording markers from LSL stream %s", info.name())
            self._marker_inlets[key] = _MarkerInlet(info)

    def _pull_markers(self) -> None:
        now = time.monotonic()
        if self._resolver is not None and now >= self._next_rescan:
            self._next_rescan = now + self.marker_rescan_interval
            self._rescan_markers()
        for m in self._marker_inlets.values():
            for event in m.pull():
                self.emit(event)

    # ------------------------------------------------------------------ pull
    def _pull_into(self, buffer: RingBuffer) -> tuple[int, float, float] | None:
        """Have liblsl write the waiting samples straight into the ring buffer's memory.

        One call into liblsl per pull (two where the free slots wrap around the end of the
        buffer), no array allocated per chunk: the samples go into the slots
        :meth:`RingBuffer.claim` lends, and the timestamps are fixed up in place.
        Streams in another format than float32 go through :meth:`_pull` and a conversion.
        """
        self._pull_markers()
        if self._direct is None:
            return super()._pull_into(buffer)
        # Claim only what liblsl holds now (readers cannot see claimed slots meanwhile). When
        # it holds nothing, wait inside liblsl a moment for the next samples instead of in
        # Python: a stream that comes back after a break is then picked up at once.
        waiting = int(self._inlet.samples_available())
        timeout = 0.0 if waiting else self.quiet_wait
        n = 0
        stamps = None
        try:
            for data, ts in buffer.claim(max(waiting, 1)):
                got = self._guarded(self._direct, data, ts, timeout)
                if got:
                    ts[:got] = self._fix_stamps(ts[:got])
                    stamps = stamps if stamps is not None else ts
                n += got
                if got < len(ts):  # liblsl had no more
                    break
        finally:
            buffer.commit(n)
        if not n:
            return None
        return n, float(stamps[0]), self._last_ts

    def _pull(self, max_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        self._pull_markers()
        data, stamps = self._guarded(
            lambda: self._inlet.pull_chunk(
                timeout=self.quiet_wait,
                max_samples=min(max_samples, self._max_chunk),
                min_samples=1,
                as_numpy=True,
            )
        )
        if stamps is None or len(stamps) == 0:
            return None
        return data, self._fix_stamps(np.asarray(stamps, dtype=np.float64))

    def _guarded(self, pull, *args):
        """Run one pull; liblsl's reconnection states become "nothing yet" or one clear error."""
        import pylsl.util

        try:
            return pull(*args)
        except pylsl.util.TimeoutError:
            # While liblsl reconnects, the clock-offset query behind a clock-corrected pull
            # can time out: that is "no samples yet", the gap logic takes it from there.
            return 0 if args else (None, None)
        except pylsl.util.LostError:
            raise SourceError(
                f"LSL stream {self.info.name!r} was lost and cannot be recovered (it has no "
                "source_id); everything received until then is kept"
            ) from None

    def _fix_stamps(self, stamps: np.ndarray) -> np.ndarray:
        """Dejitter (regular streams) and keep the timestamps monotonic."""
        if self._dejitter is not None:
            if self.stalled:  # samples after a gap start a new line
                self._dejitter.reset()
            stamps = self._dejitter(stamps)
        # Never step back in time, not even across a gap or a jittery first chunk.
        stamps = np.maximum.accumulate(np.maximum(stamps, self._last_ts))
        self._last_ts = float(stamps[-1])
        return stamps

    def _disconnect(self) -> None:
        for m in self._marker_inlets.values():
            for event in m.pull():  # markers sent just before the stop still count
                self.emit(event)
            m.close()
        self._marker_inlets.clear()
        self._resolver = None
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception as exc:
                log.debug("closing LSL inlet: %s", exc)
            self._inlet = None
