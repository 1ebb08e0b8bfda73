"""Simulated recall sessions with a known valence effect, written in the session format.

The EEG is built from parts whose physiology is well described: a 1/f background mixed across
neighbouring channels, a posterior alpha rhythm, beta activity, mains hum, eye blinks on the
frontal channels and channel-specific noise (one channel much noisier, as a loose electrode).
The participant's true affect follows each memory's valence in episodes; the effect of
valence on the EEG is frontal alpha asymmetry (approach: less alpha over the left frontal
cortex) and a frontal beta change, scaled by ``effect``. Key presses report the episodes with
human reaction delays, repeated presses and misses. With ``effect=0`` the EEG carries no
information about valence: the null data for calibration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from data_schema.errors import RecallLabError
from data_schema.types import Event, StreamInfo
from decoding.simulate_listening import ListeningSettings

#: A 32-channel 10-20 layout (the Enobio 20 of RYM is a subset).
CHANNELS_32 = (
    "Fp1 Fp2 AF3 AF4 F7 F3 Fz F4 F8 FC5 FC1 FC2 FC6 T7 C3 Cz C4 T8 CP5 CP1 CP2 CP6 "
    "P7 P3 Pz P4 P8 PO3 PO4 O1 Oz O2"
).split()
LEFT_FRONTAL = {"Fp1", "AF3", "F7", "F3", "FC5", "FC1"}
RIGHT_FRONTAL = {"Fp2", "AF4", "F8", "F4", "FC6", "FC2"}
BLINK_WEIGHT = {"Fp1": 1.0, "Fp2": 1.0, "AF3": 0.6, "AF4": 0.6, "F7": 0.35, "F8": 0.35}
BLINK_WEIGHT |= {"F3": 0.3, "F4": 0.3, "Fz": 0.3}


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate.

    Parameters
    ----------
    effect
        Size of the valence effect: relative change of frontal alpha amplitude per valence unit
        (0 = no effect; 0.3 = moderate; 1 = very strong).
    duration
        Seconds of recording (baseline plus recall phases).
    sfreq
        Sampling rate in Hz.
    n_channels
        Number of EEG channels (first ``n`` of a 32-channel 10-20 layout, at most 32).
    line_freq
        Mains frequency, 50 or 60 Hz.
    baseline
        Seconds of resting baseline at the start.
    recall
        Seconds of each recall phase (the number of memories follows from ``duration``).
    miss_rate
        Probability that the participant does not report an affect episode.
    seed
        Random seed; the same seed gives the same file contents.
    participant_id
        Pseudonym stored in the file.
    """

    effect: float = 0.5
    duration: float = 600.0
    sfreq: float = 500.0
    n_channels: int = 32
    line_freq: float = 50.0
    baseline: float = 30.0
    recall: float = 60.0
    miss_rate: float = 0.1
    seed: int = 0
    participant_id: str = "SIM01"
    listening: ListeningSettings | None = None
    voice: bool = False  # a microphone stream ``audio`` whose pitch follows the true affect
    face: bool = False  # camera frames ``video`` of a face whose mouth follows it

    @property
    def recall_start(self) -> float:
        """Seconds from the start to the first recall (after baseline and listening block)."""
        return self.baseline + (self.listening.seconds if self.listening is not None else 0.0)

    def check(self) -> None:
        if self.effect < 0:
            raise RecallLabError("--effect must be >= 0 (0 = null data)")
        if not 4 <= self.n_channels <= len(CHANNELS_32):
            raise RecallLabError(f"--channels must be between 4 and {len(CHANNELS_32)}")
        if self.sfreq < 100:
            raise RecallLabError("--rate must be at least 100 Hz")
        if self.listening is not None:
            self.listening.check()
        if self.duration < self.recall_start + 20:
            what = "baseline, listening block" if self.listening is not None else "baseline"
            raise RecallLabError(
                f"--duration must be at least {self.recall_start + 20:g} s ({what} plus one recall)"
            )
        if self.line_freq not in (50.0, 60.0):
            raise RecallLabError("--line-freq must be 50 or 60")


def _colored_noise(rng: np.random.Generator, n: int, k: int, sfreq: float, shape) -> np.ndarray:
    """``k`` channels of noise with spectrum shaped by ``shape(freqs)`` (amplitude)."""
    spec = rng.standard_normal((k, n // 2 + 1)) + 1j * rng.standard_normal((k, n // 2 + 1))
    freqs = np.fft.rfftfreq(n, 1 / sfreq)
    spec *= shape(freqs)[None, :]
    x = np.fft.irfft(spec, n=n, axis=1)
    return x / (x.std(axis=1, keepdims=True) + 1e-12)


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1:
        return x
    kernel = np.hanning(n)
    kernel /= kernel.sum()
    return np.convolve(x, kernel, mode="same")


@dataclass
class _Plan:
    phases: list[tuple[float, float, str, str, str]]  # start, end, phase id, kind, memory
    state: np.ndarray  # true valence per sample (-1..1)
    episodes: list[tuple[float, float, int]]  # start, end (s from start), code
    block_phases: list[tuple[float, float, dict]] = field(default_factory=list)  # listening
    block_events: list[tuple[float, str, str, dict]] = field(default_factory=list)


def _plan(settings: SimulationSettings, rng: np.random.Generator, n: int, library=None) -> _Plan:
    sf = settings.sfreq
    state = np.zeros(n)
    phases: list[tuple[float, float, str, str, str]] = [
        (0.0, settings.baseline, "baseline", "baseline", "")
    ]
    episodes: list[tuple[float, float, int]] = []
    block_phases: list[tuple[float, float, dict]] = []
    block_events: list[tuple[float, str, str, dict]] = []
    if settings.listening is not None:
        from decoding.simulate_listening import listening_plan

        if library is None:
            raise RecallLabError("a simulated listening block needs its music library")
        block_phases, block_events = listening_plan(
            settings.listening, library, settings.baseline, sf, state, rng
        )
    t = settings.recall_start
    i = 0
    # Memories cycle through the valences in shuffled order so every class appears.
    order = [1, -1, 0]
    while t + 20 <= settings.duration:
        if i % 3 == 0:
            rng.shuffle(order)
        valence = order[i % 3]
        end = min(t + settings.recall, settings.duration)
        mem = f"m{i + 1:02d}"
        phases.append((t, end, f"recall-{mem}", "recall", mem))
        # Affect comes in episodes of the memory's valence separated by calmer moments; a
        # neutral memory still has brief episodes of either valence.
        u = t + rng.uniform(2, 5)
        while u < end - 3:
            dur = rng.uniform(4, 10)
            code = valence if valence != 0 else int(rng.choice([-1, 1])) * int(rng.random() < 0.3)
            e_end = min(u + dur, end - 0.5)
            if code != 0:
                episodes.append((u, e_end, code))
                state[int(u * sf) : int(e_end * sf)] = code
            u = e_end + rng.uniform(3, 8)
        t = end
        i += 1
    return _Plan(phases, state, episodes, block_phases, block_events)


def _key_events(
    plan: _Plan, settings: SimulationSettings, rng: np.random.Generator, t0: float
) -> list[Event]:
    """Key presses reporting each episode: a human delay, repeats every ~1 s, some misses."""
    keys = {1: ("p", "positive"), -1: ("n", "negative")}
    events: list[Event] = []
    for start, end, code in plan.episodes:
        if rng.random() < settings.miss_rate:
            continue
        key, valence = keys[code]
        t = start + float(rng.lognormal(np.log(0.6), 0.35))  # reaction time ~0.6 s
        while t < end:
            hold = float(rng.uniform(0.08, 0.3))
            for label, ts in (("key_down", t), ("key_up", t + hold)):
                value = {"key": key, "valence": valence, "auto_repeat": False}
                events.append(Event(t0 + ts, "keyboard", label, json.dumps(value)))
            t += hold + float(rng.gamma(4.0, 0.3))  # ~1.2 s between presses, < 2 s mostly
    return events


def simulate_eeg(settings: SimulationSettings, library=None) -> tuple[np.ndarray, _Plan, list[str]]:
    """EEG in microvolts ``[samples x channels]``, the plan (phases, true valence) and names.
    ``library`` (:class:`protocols.library.MusicLibrary`) is the listening block's music."""
    settings.check()
    rng = np.random.default_rng(settings.seed)
    sf = settings.sfreq
    n = round(settings.duration * sf)
    names = list(CHANNELS_32[: settings.n_channels])
    k = len(names)
    plan = _plan(settings, rng, n, library)

    # 1/f background, spatially smoothed so neighbouring channels correlate.
    bg = _colored_noise(rng, n, k, sf, lambda f: 1 / np.sqrt(np.maximum(f, 0.5)))
    mix = np.eye(k) * 0.7 + 0.3 / k
    eeg = 12.0 * (mix @ bg)

    # Alpha: posterior-dominant, slowly waxing and waning; frontal asymmetry carries valence.
    alpha = _colored_noise(rng, n, k, sf, lambda f: np.exp(-0.5 * ((f - 10.0) / 1.0) ** 2))
    posterior = np.array([2.0 if n_[0] in "PO" else 1.0 for n_ in names])
    slow = 1 + 0.3 * _smooth(rng.standard_normal(n), int(2 * sf)) * np.sqrt(2 * sf)
    state = _smooth(plan.state, int(0.5 * sf))  # affect changes over ~0.5 s
    side = np.array(
        [1.0 if c in LEFT_FRONTAL else -1.0 if c in RIGHT_FRONTAL else 0.0 for c in names]
    )
    # Approach (positive) = left frontal activation = less left alpha, more right alpha.
    alpha_gain = 1 - settings.effect * side[:, None] * state[None, :]
    eeg += 6.0 * posterior[:, None] * np.clip(alpha_gain, 0.05, None) * slow[None, :] * alpha

    # Beta: frontal beta rises with positive and falls with negative valence.
    beta = _colored_noise(rng, n, k, sf, lambda f: ((f > 14) & (f < 28)).astype(float))
    frontal = np.array([1.0 if c in LEFT_FRONTAL | RIGHT_FRONTAL | {"Fz"} else 0.0 for c in names])
    beta_gain = 1 + 0.5 * settings.effect * frontal[:, None] * state[None, :]
    eeg += 3.0 * np.clip(beta_gain, 0.05, None) * beta

    # Mains hum with a per-channel amplitude (electrode impedance differs).
    tt = np.arange(n) / sf
    hum = rng.uniform(1, 6, k)[:, None] * np.sin(2 * np.pi * settings.line_freq * tt)[None, :]
    eeg += hum

    # Blinks: ~0.25 per second, 150 ms half-width, 80-150 uV at Fp1/Fp2.
    blink = np.zeros(n)
    n_blinks = rng.poisson(0.25 * settings.duration)
    width = 0.15 * sf
    shape = np.exp(-0.5 * (np.arange(-3 * width, 3 * width) / width) ** 2)
    for onset in rng.integers(0, max(1, n - shape.size), n_blinks):
        blink[onset : onset + shape.size] += rng.uniform(80, 150) * shape
    bw = np.array([BLINK_WEIGHT.get(c, 0.05) for c in names])
    eeg += bw[:, None] * blink[None, :]

    # Channel-specific white noise; one channel is a loose electrode (much noisier).
    noise_sd = rng.uniform(1.0, 3.0, k)
    noise_sd[rng.integers(k)] = 150.0
    eeg += noise_sd[:, None] * rng.standard_normal((k, n))
    return eeg.T.astype(np.float32), plan, names


def simulate_session(
    path: str | Path, settings: SimulationSettings | None = None, library=None
) -> Path:
    """Write a simulated recall session to ``path`` (a new ``.h5`` file; never overwrites).

    Returns the path. The file's root attribute ``simulation`` holds the settings (JSON) and
    the true affect episodes, so tests can compare decoded valence with the truth. With
    ``settings.listening``, ``library`` is the music library the listening block plays
    (:func:`decoding.simulate_listening.write_library` makes one).
    """
    from data_schema.writer import SessionWriter

    settings = settings or SimulationSettings()
    eeg, plan, names = simulate_eeg(settings, library)
    rng = np.random.default_rng(settings.seed + 1_000_003)
    t0 = 1000.0 + float(rng.uniform(0, 100))  # LSL clocks start at an arbitrary origin
    sf = settings.sfreq
    ts = t0 + np.arange(eeg.shape[0]) / sf
    truth = {"settings": asdict(settings), "episodes": plan.episodes, "t0": t0}
    attrs = {"simulation": json.dumps(truth)}
    if library is not None:
        import os

        attrs["music_library"] = os.path.relpath(library.folder, Path(path).resolve().parent)
    info = StreamInfo(
        "eeg",
        names,
        ["eeg"] * len(names),
        ["uV"] * len(names),
        sf,
        "EEG",
        "simulate",
        {"generator": "recall-lab simulate"},
    )
    with SessionWriter(
        path,
        participant_id=settings.participant_id,
        protocol="simulated-recall",
        notes=f"simulated session, effect={settings.effect:g}, seed={settings.seed}",
        attrs=attrs,
    ) as w:
        w.add_stream("eeg", info)
        step = int(10 * sf)
        for i in range(0, eeg.shape[0], step):
            w.append("eeg", eeg[i : i + step], ts[i : i + step])
        events: list[Event] = []
        for start, end, phase, kind, mem in plan.phases:
            value = json.dumps({"phase": phase, "kind": kind, "memory": mem})
            events.append(Event(t0 + start, "protocol", "phase_start", value))
            events.append(Event(t0 + end - 1 / sf, "protocol", "phase_end", value))
            if mem:
                w.memory_group(mem, cue=f"simulated memory {mem}", started=t0 + start)
        if plan.block_phases:
            from decoding.simulate_listening import event_value

            for i, (start, end, marker) in enumerate(plan.block_phases):
                value = json.dumps({**marker, "index": i + 1})
                events.append(Event(t0 + start, "protocol", "phase_start", value))
                events.append(Event(t0 + end - 1 / sf, "protocol", "phase_end", value))
            for ts_, source, label, value_ in plan.block_events:
                events.append(Event(t0 + ts_, source, label, event_value(value_)))
        events += _key_events(plan, settings, rng, t0)
        if settings.voice or settings.face:
            from decoding.simulate_av import write_voice_and_face

            write_voice_and_face(
                w,
                plan.state,
                sf,
                t0,
                settings.effect,
                np.random.default_rng(settings.seed + 7_000_003),
                with_voice=settings.voice,
                with_face=settings.face,
            )
        events.sort(key=lambda e: e.timestamp)
        w.add_events(events)
    return Path(path)
