"""Sliding windows over preprocessed EEG: log band power per channel, labels, groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_schema.errors import RecallLabError
from decoding.config import WindowConfig
from decoding.preprocess import PreparedEEG


@dataclass
class WindowSet:
    """Windows of one session.

    Attributes
    ----------
    X
        Log10 band power ``[windows x (channels * bands)]``, float32.
    times
        LSL seconds of each window's centre.
    feature_names
        ``"<channel>:<band>"`` per column.
    memory
        Memory id of the recall phase holding the window centre, ``""`` elsewhere.
    phase_kind
        Protocol phase kind at the window centre (``""`` outside phases).
    """

    X: np.ndarray
    times: np.ndarray
    feature_names: list[str]
    memory: np.ndarray
    phase_kind: np.ndarray


def band_power_windows(
    prepared: PreparedEEG, cfg: WindowConfig, *, baseline: bool = True
) -> WindowSet:
    """Log band power of every window (Hann taper, FFT), baseline-normalised when possible.

    Baseline normalisation subtracts the mean log power of the baseline phase's windows from
    every window: RYM's per-session baseline correction, carried to the features the decoders
    see (after a high-pass filter, channel means are close to zero anyway). It uses no labels.
    """
    raw = prepared.raw
    sf = raw.info["sfreq"]
    data = raw.get_data().astype(np.float32)
    n_len = round(cfg.length * sf)
    n_step = max(1, round(cfg.step * sf))
    if data.shape[1] < n_len * 4:
        raise RecallLabError(
            f"the recording is too short for {cfg.length:g} s windows ({data.shape[1] / sf:.1f} s)"
        )
    starts = np.arange(0, data.shape[1] - n_len + 1, n_step)
    freqs = np.fft.rfftfreq(n_len, 1 / sf)
    taper = np.hanning(n_len).astype(np.float32)
    bands = list(cfg.bands.items())
    masks = []
    for name, (lo, hi) in bands:
        m = (freqs >= lo) & (freqs < hi)
        if not m.any():
            raise RecallLabError(
                f"windows.bands.{name} ({lo}-{hi} Hz) holds no frequency bin at {sf:g} Hz with "
                f"{cfg.length:g} s windows; widen the band or lengthen the windows"
            )
        masks.append(m)
    n_ch = data.shape[0]
    out = np.empty((starts.size, n_ch * len(bands)), np.float32)
    chunk = max(1, int(2e7 // (n_ch * n_len)))  # bound memory to ~80 MB per chunk
    view = np.lib.stride_tricks.sliding_window_view(data, n_len, axis=1)  # [ch, n, len]
    for i in range(0, starts.size, chunk):
        seg = view[:, starts[i : i + chunk], :] * taper  # [ch, w, len]
        power = np.abs(np.fft.rfft(seg, axis=-1)) ** 2
        for b, m in enumerate(masks):
            bp = power[..., m].mean(axis=-1)  # [ch, w]
            out[i : i + chunk, b :: len(bands)] = np.log10(bp.T + 1e-30)
    centres = starts + n_len // 2
    times = prepared.times[centres]
    names = [f"{ch}:{b}" for ch in raw.ch_names for b, _ in bands]

    memory = np.full(times.size, "", dtype=object)
    kind = np.full(times.size, "", dtype=object)
    for p in prepared.phases:
        sel = (times >= p.start) & (times < p.end)
        kind[sel] = p.kind
        if p.kind == "recall" and p.memory:
            memory[sel] = p.memory
    if baseline and prepared.baseline is not None:
        sel = kind == "baseline"
        if sel.sum() >= 4:
            out -= out[sel].mean(axis=0, keepdims=True)
    return WindowSet(out, times, names, memory.astype(str), kind.astype(str))


def sample_rows(prepared: PreparedEEG) -> WindowSet:
    """Every preprocessed EEG sample as one row (``windows.input: samples``), as RYM gave its
    EEG to CEBRA: channels in volts at the session's rate, the baseline phase's channel means
    already subtracted by :func:`decoding.preprocess.preprocess`. Row times are sample times."""
    raw = prepared.raw
    X = np.ascontiguousarray(raw.get_data().T, dtype=np.float32)
    times = np.asarray(prepared.times, np.float64)
    if X.shape[0] < 100:
        raise RecallLabError(f"the recording holds {X.shape[0]} samples: too short to decode")
    memory = np.full(times.size, "", dtype=object)
    kind = np.full(times.size, "", dtype=object)
    for p in prepared.phases:
        lo, hi = np.searchsorted(times, [p.start, p.end])
        kind[lo:hi] = p.kind
        if p.kind == "recall" and p.memory:
            memory[lo:hi] = p.memory
    return WindowSet(X, times, list(raw.ch_names), memory.astype(str), kind.astype(str))
