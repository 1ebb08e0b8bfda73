"""MNE preprocessing of a session's EEG: filters, re-reference, bad channels, ICA, baseline."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from data_schema.errors import RecallLabError

if TYPE_CHECKING:
    import mne

    from data_schema.reader import Session
    from decoding.config import PreprocessConfig

log = logging.getLogger(__name__)

#: Shortest recording worth decoding, in seconds.
MIN_DURATION = 20.0
FRONTAL_EOG_PROXIES = ("Fp1", "Fp2", "AF7", "AF8", "AF3", "AF4", "F7", "F8")


class PreprocessError(RecallLabError):
    """The EEG cannot be preprocessed as configured."""


@dataclass
class Phase:
    """A protocol phase on the LSL clock."""

    start: float
    end: float
    kind: str
    memory: str = ""
    clip: str = ""  # the clip a listening block's phase plays or rates


@dataclass
class PreparedEEG:
    """A session's EEG after preprocessing.

    Attributes
    ----------
    raw
        Preprocessed EEG channels only (volts).
    times
        LSL seconds of every sample of ``raw``.
    phases
        Protocol phases (baseline, recall...) found in the events; empty for plain recordings.
    bads
        Channels detected as bad (interpolated, or dropped where positions are unknown).
    line_freq
        Mains frequency notched out (None if none).
    notes
        What was done or skipped and why, for the record.
    """

    raw: mne.io.BaseRaw
    times: np.ndarray
    phases: list[Phase]
    bads: list[str] = field(default_factory=list)
    line_freq: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> Phase | None:
        return next((p for p in self.phases if p.kind == "baseline"), None)


def _phase(start: float, end: float, marker: dict) -> Phase:
    return Phase(
        start,
        end,
        str(marker.get("kind", "")),
        str(marker.get("memory") or ""),
        str(marker.get("clip") or ""),
    )


def protocol_phases(session: Session) -> list[Phase]:
    """Phases from ``protocol`` ``phase_start``/``phase_end`` events (unclosed ones end at the
    end of the EEG)."""
    open_: dict[str, tuple[float, dict]] = {}
    phases: list[Phase] = []
    for e in session.events_where(source="protocol"):
        if e.label not in ("phase_start", "phase_end"):
            continue
        try:
            v = json.loads(e.value)
        except (json.JSONDecodeError, TypeError):
            v = {"phase": e.value}
        if not isinstance(v, dict):
            v = {"phase": str(v)}
        pid = str(v.get("phase", ""))
        if e.label == "phase_start":
            open_[pid] = (e.timestamp, v)
        elif pid in open_:
            t0, v0 = open_.pop(pid)
            phases.append(_phase(t0, e.timestamp, v0))
    end = float(session.eeg.timestamps[-1]) if session.eeg.n_samples else 0.0
    for t0, v0 in open_.values():
        phases.append(_phase(t0, end, v0))
    phases.sort(key=lambda p: p.start)
    return phases


def detect_line_freq(raw: mne.io.BaseRaw) -> float | None:
    """50 or 60 if the spectrum has a clear peak there (10x its neighbours), else None."""
    from scipy.signal import welch

    sf = raw.info["sfreq"]
    data = raw.get_data(start=0, stop=min(raw.n_times, int(60 * sf)))
    f, pxx = welch(data, fs=sf, nperseg=int(min(data.shape[1], 2 * sf)))
    psd = np.median(pxx, axis=0)
    best, best_ratio = None, 10.0
    for line in (50.0, 60.0):
        if line >= sf / 2:
            continue
        peak = psd[np.argmin(np.abs(f - line))]
        around = (np.abs(f - line) > 2) & (np.abs(f - line) < 6)
        ratio = peak / (np.median(psd[around]) + 1e-30)
        if ratio > best_ratio:
            best, best_ratio = line, ratio
    return best


def _resampled_times(ts: np.ndarray, n_new: int, sf_old: float, sf_new: float) -> np.ndarray:
    """LSL times of resampled samples, following the recorded timestamps (drift-safe)."""
    old = np.arange(ts.size) / sf_old
    return np.interp(np.arange(n_new) / sf_new, old, ts)


def detect_bad_channels(data: np.ndarray, names: list[str], z: float) -> list[str]:
    """Flat channels and channels whose log-variance is a robust outlier (> ``z`` MADs)."""
    var = data.var(axis=1)
    bads = [n for n, v in zip(names, var) if v < 1e-22]
    lv = np.log(np.maximum(var, 1e-30))
    med = np.median(lv)
    mad = np.median(np.abs(lv - med)) * 1.4826 + 1e-9
    bads += [n for n, v in zip(names, lv) if abs(v - med) / mad > z and n not in bads]
    return bads


def preprocess(session: Session, cfg: PreprocessConfig) -> PreparedEEG:
    """Preprocess ``session``'s EEG as ``cfg`` says.

    Order: pick EEG channels, band-pass, resample, notch, detect and interpolate bad channels,
    optional ICA (blink components found with frontal channels as EOG proxies), re-reference,
    subtract the baseline phase's channel means (RYM).
    """
    import mne

    notes: list[str] = []
    stream = session.eeg
    if stream.n_samples == 0:
        raise PreprocessError(f"{session.path}: the EEG stream holds no samples")
    duration = stream.duration
    if duration < MIN_DURATION:
        raise PreprocessError(
            f"{session.path}: the recording is {duration:.1f} s long; decoding needs at least "
            f"{MIN_DURATION:g} s of EEG (record longer)"
        )
    raw = session.to_raw()
    eeg_names = [n for n, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg"]
    if not eeg_names:
        raise PreprocessError(f"{session.path}: no channel of type 'eeg' in the EEG stream")
    if cfg.channels:
        unknown = [c for c in cfg.channels if c not in eeg_names]
        if unknown:
            raise PreprocessError(
                f"preprocess.channels names {unknown} not in {session.path}; its EEG channels "
                f"are {eeg_names}"
            )
        eeg_names = list(cfg.channels)
    if (
        cfg.reference not in (None, "average")
        and cfg.reference not in raw.ch_names
        and cfg.reference.lower() not in ("none", "")
    ):
        raise PreprocessError(
            f"preprocess.reference channel {cfg.reference!r} not in {session.path}; use "
            f"'average' or one of {eeg_names}"
        )
    ref_channel = cfg.reference if cfg.reference not in (None, "average") else None
    keep = eeg_names + ([ref_channel] if ref_channel and ref_channel not in eeg_names else [])
    raw.pick(keep)
    if ref_channel and ref_channel not in eeg_names:
        raw.set_channel_types({ref_channel: "eeg"})
    sf0 = raw.info["sfreq"]
    nyq = sf0 / 2
    raw.load_data()

    l_freq = cfg.l_freq
    h_freq = cfg.h_freq if cfg.h_freq is None or cfg.h_freq < nyq else None
    if cfg.h_freq is not None and h_freq is None:
        notes.append(f"low-pass {cfg.h_freq} Hz skipped: at or above Nyquist ({nyq:g} Hz)")
    if l_freq is not None or h_freq is not None:
        raw.filter(l_freq, h_freq, picks="all", verbose=False)
    if cfg.resample and cfg.resample < sf0:
        raw.resample(cfg.resample, npad="auto", verbose=False)
    sf = raw.info["sfreq"]
    times = _resampled_times(stream.timestamps, raw.n_times, sf0, sf)

    line = cfg.line_freq
    if line == "auto":
        line = detect_line_freq(raw)
        notes.append(f"line frequency {'not found' if line is None else f'{line:g} Hz'} (auto)")
    if line:
        freqs = np.arange(float(line), sf / 2, float(line))
        if freqs.size:
            raw.notch_filter(freqs, picks="all", verbose=False)

    bads: list[str] = []
    if cfg.bad_channels:
        bads = detect_bad_channels(raw.get_data(picks=eeg_names), eeg_names, cfg.bad_z)
        if len(bads) > len(eeg_names) // 2:
            raise PreprocessError(
                f"{session.path}: {len(bads)} of {len(eeg_names)} channels look bad (flat or "
                "extreme variance); check the electrodes or set preprocess.bad_channels: false"
            )
    positions_known: list[str] = []
    if cfg.montage:
        if cfg.montage not in mne.channels.get_builtin_montages():
            raise PreprocessError(
                f"preprocess.montage {cfg.montage!r} is not an MNE built-in montage; use e.g. "
                "colin27_1005, biosemi64 or null"
            )
        montage = mne.channels.make_standard_montage(cfg.montage)
        known = {n.lower() for n in montage.ch_names}
        positions_known = [n for n in raw.ch_names if n.lower() in known]
        missing = [n for n in raw.ch_names if n.lower() not in known]
        if positions_known:
            raw.set_montage(montage, match_case=False, on_missing="ignore", verbose=False)
        if missing:
            notes.append(
                f"no {cfg.montage} position for {missing}: bad ones are dropped, not interpolated"
            )
    if bads:
        interp = [b for b in bads if b in positions_known]
        drop = [b for b in bads if b not in interp]
        if interp and len(positions_known) - len(interp) >= 4:
            raw.info["bads"] = interp
            # A fixed head-centred origin: fitting a sphere to few EEG positions is unstable.
            raw.interpolate_bads(reset_bads=True, origin=(0.0, 0.0, 0.04), verbose=False)
            notes.append(f"bad channels interpolated: {interp}")
        else:
            drop += interp
        if drop:
            raw.drop_channels(drop)
            notes.append(f"bad channels dropped: {drop}")

    if cfg.ica:
        _remove_blinks(raw, cfg, notes)

    if ref_channel:
        raw.set_eeg_reference([ref_channel], verbose=False)
        raw.drop_channels([ref_channel])
    elif cfg.reference == "average":
        raw.set_eeg_reference("average", projection=False, verbose=False)

    phases = protocol_phases(session)
    prepared = PreparedEEG(raw, times, phases, bads, float(line) if line else None, notes)
    base = prepared.baseline
    if cfg.baseline and base is not None:
        sel = (times >= base.start) & (times <= base.end)
        if sel.sum() >= sf:  # at least a second of baseline
            data = raw._data  # in place: the raw is ours
            data -= data[:, sel].mean(axis=1, keepdims=True)
            notes.append(f"baseline channel means subtracted ({base.end - base.start:.1f} s)")
        else:
            notes.append("baseline phase shorter than 1 s: baseline normalisation skipped")
    elif cfg.baseline:
        notes.append("no baseline phase: baseline normalisation skipped, whole recording used")
    return prepared


def _remove_blinks(raw: mne.io.BaseRaw, cfg: PreprocessConfig, notes: list[str]) -> None:
    from mne.preprocessing import ICA

    proxies = [c for c in FRONTAL_EOG_PROXIES if c in raw.ch_names]
    if not proxies:
        notes.append("ICA skipped: no frontal channel (Fp1, Fp2, AF7...) to find blinks with")
        return
    n_comp = cfg.ica_components
    if isinstance(n_comp, int):
        n_comp = min(n_comp, len(raw.ch_names) - 1)
    ica = ICA(n_components=n_comp, method="fastica", rng=0, max_iter="auto")
    ica.fit(raw, verbose=False)
    exclude: set[int] = set()
    for ch in proxies[:2]:
        idx, _ = ica.find_bads_eog(raw, ch_name=ch, verbose=False)
        exclude.update(int(i) for i in idx)
    ica.exclude = sorted(exclude)
    ica.apply(raw, verbose=False)
    notes.append(f"ICA: removed {len(exclude)} blink component(s) using {proxies[:2]}")
