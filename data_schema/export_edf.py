"""EDF+ export written with edfio directly (``recall-lab export --format edf``).

Each signal gets its own physical range (the channel's own min/max, rounded outwards to what
the 8-character header field can hold), so a quiet channel next to a loud one keeps its
detail: samples come back within one 16-bit step, ``(max - min) / 65535``, of that channel.
Trigger/status (``stim``) channels are written 1:1 (digital = physical), so integer codes come
back exactly (codes beyond 16 bits are scaled like a signal, with a progress line). The
data-record duration is chosen to divide the samples exactly; only when no such duration
exists are samples padded, and the progress line says how many.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_schema.errors import SessionFileError

_VOLTAGE = {"eeg", "eog", "ecg", "emg", "seeg", "ecog"}
# EDF recommends data records of at most 61440 bytes.
_MAX_RECORD_BYTES = 61440
_DIGITAL = (-32768, 32767)


def _fits(x: float) -> bool:
    return len(f"{x:.10g}") <= 8 and float(f"{x:.10g}") == x


def _header_number(x: float, up: bool) -> float:
    """``x`` rounded outwards (up or down) to the finest value an 8-character field holds."""
    for decimals in range(7, -1, -1):
        f = 10.0**decimals
        r = (math.ceil(x * f) if up else math.floor(x * f)) / f
        r = round(r, decimals)
        if len(f"{r:.{decimals}f}".rstrip("0").rstrip(".")) <= 8:
            return r
    raise SessionFileError(f"a sample value {x:g} does not fit an EDF header field (8 characters)")


def physical_range(values: np.ndarray) -> tuple[float, float]:
    """The channel's own physical range, as the EDF header will hold it."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo < 1e-6 * max(abs(lo), abs(hi), 1.0):
        # A flat channel: any non-empty range holds it exactly.
        lo, hi = lo - 1.0, hi + 1.0
    return _header_number(lo, up=False), _header_number(hi, up=True)


def samples_per_record(n: int, rate: float, n_signals: int) -> int | None:
    """The largest record size (in samples) that divides ``n`` exactly, whose duration
    ``size / rate`` is exact in the 8-character header and whose record fits 61440 bytes;
    ``None`` when there is none."""
    max_size = max(1, _MAX_RECORD_BYTES // (2 * n_signals))
    divisors = set()
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            divisors.update((d, n // d))
    for size in sorted(divisors, reverse=True):
        if size > max_size:
            continue
        if _exact_duration(size, rate):
            return size
    return None


def _exact_duration(size: int, rate: float) -> bool:
    """Whether ``size / rate`` seconds is written exactly in the 8-character header."""
    return _fits(size / rate) and abs(float(f"{size / rate:.10g}") * rate - size) < 1e-9


def edf_labels(names: list[str]) -> list[str]:
    """Channel names as EDF labels: ASCII, at most 16 characters, unique."""
    import unicodedata

    labels: list[str] = []
    for name in names:
        base = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() or "ch"
        label, k = base[:16], 1
        while label in labels:
            suffix = f"-{k}"
            label, k = base[: 16 - len(suffix)] + suffix, k + 1
        labels.append(label)
    return labels


def write_edf(
    raw, out: Path, channel_types: list[str], say: Callable[[str], None] = lambda _m: None
) -> list[Path]:
    """Write ``raw`` (MNE, volts) as EDF+ at ``out``; ``channel_types`` are the stream's."""
    import edfio

    rate = float(raw.info["sfreq"])
    data = raw.get_data()
    n = data.shape[1]
    size = samples_per_record(n, rate, len(data))
    pad = 0
    if size is None:
        # No exact record duration divides the data: fall back to the shortest record holding
        # a whole number of samples and say how many samples are repeated at the end.
        size = next((k for k in range(1, n + 1) if _exact_duration(k, rate)), None)
        if size is None:
            raise SessionFileError(
                f"no EDF record duration suits a rate of {rate:g} Hz; export fif instead"
            )
        pad = (-n) % size
        say(f"EDF needs whole data records: the last value is repeated for {pad} padded samples")
    if pad:
        data = np.concatenate([data, np.repeat(data[:, -1:], pad, axis=1)], axis=1)
    labels = edf_labels(raw.ch_names)
    renamed = [f"{a} -> {b}" for a, b in zip(raw.ch_names, labels) if a != b]
    if renamed:
        say(f"EDF labels are 16 ASCII characters: {', '.join(renamed)}")
    signals = []
    for name, kind, x in zip(labels, channel_types, data):
        if kind == "stim":
            codes = np.round(x)
            if np.all(codes == x) and codes.min() >= _DIGITAL[0] and codes.max() <= _DIGITAL[1]:
                signals.append(
                    edfio.EdfSignal(
                        codes,
                        rate,
                        label=name,
                        physical_dimension="",
                        physical_range=(float(_DIGITAL[0]), float(_DIGITAL[1])),
                        digital_range=_DIGITAL,
                    )
                )
                continue
            say(
                f"trigger channel {name} holds values that are not 16-bit integer codes: "
                "scaled to its range like a signal (codes may be off by one step); "
                "fif keeps them exactly"
            )
        volts = kind in _VOLTAGE
        x = x * 1e6 if volts else x  # EDF EEG is conventionally in uV
        signals.append(
            edfio.EdfSignal(
                x,
                rate,
                label=name,
                physical_dimension="uV" if volts else "",
                physical_range=physical_range(x),
                digital_range=_DIGITAL,
            )
        )
    meas_date = raw.info["meas_date"]
    if meas_date is not None and not 1985 <= meas_date.year <= 2084:
        say(f"the recording date {meas_date:%Y-%m-%d} is outside EDF's 1985-2084: not written")
        meas_date = None
    ann = raw.annotations
    edf = edfio.Edf(
        signals,
        recording=edfio.Recording(startdate=meas_date.date()) if meas_date else None,
        starttime=meas_date.time().replace(tzinfo=None, microsecond=0) if meas_date else None,
        data_record_duration=size / rate,
        annotations=[
            edfio.EdfAnnotation(float(o), float(d) if d else None, str(t))
            for o, d, t in zip(ann.onset, ann.duration, ann.description)
        ],
    )
    edf.write(out)
    return [out]
