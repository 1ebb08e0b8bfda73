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
    clip
        The listening block's clip playing at the window centre, ``""`` elsewhere.
    starts
        LSL seconds of each window's start.
    """

    X: np.ndarray
    times: np.ndarray
    feature_names: list[str]
    memory: np.ndarray
    phase_kind: np.ndarray
    clip: np.ndarray | None = None
    starts: np.ndarray | None = None


def _phase_arrays(
    prepared: PreparedEEG, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Memory (recall phases), phase kind and clip (listening phases) at each of ``times``."""
    memory = np.full(times.size, "", dtype=object)
    kind = np.full(times.size, "", dtype=object)
    clip = np.full(times.size, "", dtype=object)
    for p in prepared.phases:
        lo, hi = np.searchsorted(times, [p.start, p.end])
        kind[lo:hi] = p.kind
        if p.kind == "recall" and p.memory:
            memory[lo:hi] = p.memory
        if p.kind == "listening" and p.clip:
            clip[lo:hi] = p.clip
    return memory.astype(str), kind.astype(str), clip.astype(str)


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
    memory, kind, clip = _phase_arrays(prepared, times)
    if baseline and prepared.baseline is not None:
        sel = kind == "baseline"
        if sel.sum() >= 4:
            out -= out[sel].mean(axis=0, keepdims=True)
    return WindowSet(out, times, names, memory, kind, clip, prepared.times[starts])


def de_windows(prepared: PreparedEEG, cfg: WindowConfig, *, baseline: bool = True) -> WindowSet:
    """Differential entropy of every window (``windows.input: de``): per channel, band and
    1-s segment (:func:`decoding.music_supervised.de_features`), baseline-normalised like
    band power (the baseline phase's mean subtracted). Windows of ``cfg.length`` s (a whole
    number of seconds, at least 1) every ``cfg.step`` s."""
    from decoding.music_supervised import de_feature_names, de_features

    raw = prepared.raw
    sf = float(raw.info["sfreq"])
    seconds = round(cfg.length)
    if seconds < 1 or abs(seconds - cfg.length) > 1e-6:
        raise RecallLabError(
            f"windows.length {cfg.length:g} s: differential entropy needs whole seconds (e.g. 3)"
        )
    data = raw.get_data()
    n_len = round(seconds * sf)
    n_step = max(1, round(cfg.step * sf))
    if data.shape[1] < n_len * 4:
        raise RecallLabError(
            f"the recording is too short for {cfg.length:g} s windows ({data.shape[1] / sf:.1f} s)"
        )
    starts = np.arange(0, data.shape[1] - n_len + 1, n_step)
    bands = {k: (float(v[0]), float(v[1])) for k, v in cfg.bands.items()}
    for name, (lo, hi) in bands.items():
        if hi >= sf / 2:
            raise RecallLabError(
                f"windows.bands.{name} ({lo:g}-{hi:g} Hz) reaches the Nyquist frequency of the "
                f"{sf:g} Hz recording; lower the band or keep a higher rate (preprocess.resample)"
            )
    de = de_features(data, sf, starts, length=float(seconds), bands=bands)
    out = de.reshape(len(starts), -1).astype(np.float32)
    names = de_feature_names(list(raw.ch_names), list(bands), seconds)
    times = prepared.times[starts + n_len // 2]
    memory, kind, clip = _phase_arrays(prepared, times)
    if baseline and prepared.baseline is not None:
        sel = kind == "baseline"
        if sel.sum() >= 4:
            out -= out[sel].mean(axis=0, keepdims=True)
    return WindowSet(out, times, names, memory, kind, clip, prepared.times[starts])


def raw_windows(prepared: PreparedEEG, cfg: WindowConfig) -> WindowSet:
    """The preprocessed EEG of every window itself (``windows.input: raw``), for decoders that
    learn their own filters (the multimodal fusion's EEGformer): each row is the window's
    ``[channels x samples]`` block flattened channel-major, named ``"<channel>:t<k>"``, in
    volts as MNE keeps them (the decoder standardises)."""
    raw = prepared.raw
    sf = float(raw.info["sfreq"])
    data = raw.get_data().astype(np.float32)
    n_len = round(cfg.length * sf)
    n_step = max(1, round(cfg.step * sf))
    if data.shape[1] < n_len * 4:
        raise RecallLabError(
            f"the recording is too short for {cfg.length:g} s windows ({data.shape[1] / sf:.1f} s)"
        )
    starts = np.arange(0, data.shape[1] - n_len + 1, n_step)
    view = np.lib.stride_tricks.sliding_window_view(data, n_len, axis=1)  # [ch, n, len]
    X = np.ascontiguousarray(view[:, starts, :].transpose(1, 0, 2)).reshape(len(starts), -1)
    names = [f"{ch}:t{k}" for ch in raw.ch_names for k in range(n_len)]
    times = prepared.times[starts + n_len // 2]
    memory, kind, clip = _phase_arrays(prepared, times)
    return WindowSet(X, times, names, memory, kind, clip, prepared.times[starts])


def sample_rows(prepared: PreparedEEG) -> WindowSet:
    """Every preprocessed EEG sample as one row (``windows.input: samples``), as RYM gave its
    EEG to CEBRA: channels in volts at the session's rate, the baseline phase's channel means
    already subtracted by :func:`decoding.preprocess.preprocess`. Row times are sample times."""
    raw = prepared.raw
    X = np.ascontiguousarray(raw.get_data().T, dtype=np.float32)
    times = np.asarray(prepared.times, np.float64)
    if X.shape[0] < 100:
        raise RecallLabError(f"the recording holds {X.shape[0]} samples: too short to decode")
    memory, kind, clip = _phase_arrays(prepared, times)
    return WindowSet(X, times, list(raw.ch_names), memory, kind, clip, times)
