"""A scripted, seeded participant that drives a :class:`ProtocolEngine` exactly as the GUI does.

For every phase it writes a script of timestamped inputs when the phase begins, and
:meth:`SimulatedParticipant.act` feeds the engine every input whose time has come:

- instructions: reads for a few seconds, then presses the continue key;
- recall: valence key presses in positive and negative episodes separated by neutral spells,
  with human-like timing: runs of short taps, and now and then a long hold that makes the
  keyboard auto-repeat;
- description: types a few sentences word by word (drafts), then submits them (no names);
- sketch: draws strokes (points with timestamps and pressure) and submits them with a PNG
  drawn with PIL;
- melody: hums a synthesized tune into a simulated microphone, chunk by chunk, at 32 kHz;
- SAM: rates valence and arousal, in line with the memory's mood.

The same seed gives the same session (up to the LSL clock's origin). ``time_scale`` shrinks
every delay in the script, to match a protocol scaled with :meth:`Protocol.scaled`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from data_schema.writer import STROKE_DTYPE
from protocols.engine import ProtocolEngine, Step
from protocols.model import (
    DescriptionPhase,
    MelodyPhase,
    NarrationPhase,
    PreferenceChoice,
    PreferenceRating,
    PreferenceVideo,
    RecallPhase,
    SamPhase,
    SketchPhase,
)

MELODY_RATE = 32_000

_SENTENCES = {
    "positive": [
        "The light was soft and warm, and everything felt slow and easy.",
        "We laughed a lot that afternoon and the air smelled of cut grass.",
        "I remember the sound of water and feeling completely at ease.",
        "There was music somewhere nearby and I felt light and happy.",
        "It was one of those days when nothing had to be done.",
    ],
    "negative": [
        "The room was quiet and grey, and I did not know what to say.",
        "It rained the whole day and I felt a heavy weight in my chest.",
        "Everyone was packing and the hallway echoed with every step.",
        "I remember waiting for a long time and feeling very alone.",
        "The goodbye was short, and afterwards the house felt empty.",
    ],
}


@dataclass(order=True)
class _Input:
    time: float  # LSL seconds
    order: int
    apply: Callable[[float], None]
    carry: bool = False  # still due if the phase ends first (releasing a held key)


class SimulatedParticipant:
    """Feed ``engine`` the inputs a participant would give, at human-like times.

    Parameters
    ----------
    engine
        The engine to drive (already built; started by the caller).
    seed
        Seed of every random choice: the same seed gives the same inputs.
    time_scale
        Multiplies every delay (``0.1`` for a protocol scaled by 0.1).
    moods
        Memory id -> ``positive`` or ``negative``: the memory's dominant valence. By default
        memories alternate, starting with positive.
    """

    def __init__(
        self,
        engine: ProtocolEngine,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        moods: dict[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.rng = np.random.default_rng(seed)
        self.scale = float(time_scale)
        self.moods = dict(moods or {})
        for i, m in enumerate(engine.protocol.memories):
            self.moods.setdefault(m.id, "positive" if i % 2 == 0 else "negative")
        self._step: int | None = None
        self._start = 0.0
        self._script: list[_Input] = []
        self._n = 0
        #: What was done, for summaries and tests: key presses by valence, etc.
        self.log: dict[str, int] = {
            "positive_presses": 0,
            "negative_presses": 0,
            "auto_repeats": 0,
            "descriptions": 0,
            "sketch_points": 0,
            "melody_samples": 0,
            "sam_ratings": 0,
        }

    # ------------------------------------------------------------------ driving
    def act(self, now: float) -> None:
        """Give the engine every input due up to ``now`` (call before ``engine.tick(now)``)."""
        while not self.engine.done and self.engine.current is not None:
            step = self.engine.current
            if step.index != self._step:
                self._begin(step, self.engine.phase_started_at)
            if not self._script or self._script[0].time > now:
                return
            item = self._script.pop(0)
            item.apply(item.time)

    # ------------------------------------------------------------------ scripts
    def _begin(self, step: Step, start: float) -> None:
        self._step = step.index
        self._start = start
        # a key pressed in the last phase is still released: fingers do not wait for phases
        self._script = [item for item in self._script if item.carry]
        phase = step.phase
        if isinstance(phase, RecallPhase):
            self._recall(step, phase)
        elif isinstance(phase, DescriptionPhase):
            self._description(step, phase)
        elif isinstance(phase, SketchPhase):
            self._sketch(step, phase)
        elif isinstance(phase, MelodyPhase):
            self._melody(step, phase)
        elif isinstance(phase, SamPhase):
            self._sam(step, phase)
        elif isinstance(phase, PreferenceVideo):
            self._watch(step, phase)
        elif isinstance(phase, PreferenceRating):
            self._rate_video(step, phase)
        elif isinstance(phase, PreferenceChoice):
            self._choose(step, phase)
        elif phase.kind == "listening":
            # The simulated display "plays" the clip at once (no sound device: latency unknown).
            self._at(0.0, lambda ts: self.engine.clip_started(ts, output_latency=None))
        if phase.end == "key":  # read or rest a little, then press the continue key
            self._continue(phase)
        self._script.sort()

    def _at(self, t: float, fn: Callable[[float], None], *, carry: bool = False) -> None:
        """Schedule ``fn(timestamp)`` at ``t`` seconds (scaled) after the phase start."""
        self._n += 1
        self._script.append(_Input(self._start + float(t), self._n, fn, carry))

    def _u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def _limit(self, phase, wanted: float) -> float:
        """A time (scaled) safely inside the phase's max_duration, if it has one."""
        t = wanted * self.scale
        if phase.max_duration is not None:
            t = min(t, 0.8 * phase.max_duration)
        return max(t, phase.min_duration + 0.05 * self.scale)

    def _continue(self, phase) -> None:
        t = self._limit(phase, self._u(2.0, 4.0))
        if isinstance(phase, RecallPhase):
            t = self._limit(phase, 20.0)  # recall for a while before going on
        if isinstance(phase, NarrationPhase) and phase.start_key:
            # Think a moment, press the start key, speak for a while, press the end key.
            begin = self._limit(phase, self._u(0.5, 1.5))
            self._press_key(phase.start_key, begin)
            t = max(self._limit(phase, self._u(10.0, 20.0)), begin + 0.5 * self.scale)
        self._press_key(phase.continue_key, t)

    def _press_key(self, key: str, t: float) -> None:
        self._at(t, lambda ts: self.engine.key_down(key, ts))
        self._at(t + 0.12 * self.scale, lambda ts: self.engine.key_up(key, ts), carry=True)

    def _recall(self, step: Step, phase: RecallPhase) -> None:
        cfg = phase.valence or self.engine.protocol.valence
        if cfg.mode == "off":
            return
        mood = self.moods.get(step.memory_id or "", "positive")
        other = "negative" if mood == "positive" else "positive"
        keys = {"positive": cfg.positive_key, "negative": cfg.negative_key}
        s = self.scale
        # the phase's times are already scaled (Protocol.scaled); the script's own are not
        end = phase.duration if phase.duration else (phase.max_duration or 30.0 * s)
        margin = 0.3 * s
        t = self._u(0.5, 2.0) * s
        previous = other  # the first episode follows the memory's mood
        while t < end - margin:
            # now and then a short contrary episode, never two in a row, so the memory's
            # mood dominates the recall as it does for real participants' memories
            valence = other if previous == mood and self.rng.random() < 0.3 else mood
            previous = valence
            key = keys[valence]
            length = self._u(3.0, 8.0) if valence == mood else self._u(1.0, 2.5)
            episode_end = min(t + length * s, end - margin)
            while t < episode_end:
                if self.rng.random() < 0.25:  # a long hold: the keyboard auto-repeats
                    hold = self._u(1.0, 3.0) * s
                else:
                    hold = self._u(0.08, 0.25) * s
                up = min(t + hold, end - margin)
                self._press(key, valence, t, up)
                t = up + self._u(0.3, 1.2) * s
            t += self._u(2.5, 6.0) * s  # a neutral spell, longer than the hold time

    def _press(self, key: str, valence: str, down: float, up: float) -> None:
        eng = self.engine
        self._at(down, lambda ts: eng.key_down(key, ts))
        self.log[f"{valence}_presses"] += 1
        # Operating systems start repeating after ~0.5 s, then ~30 times a second.
        t = down + 0.5 * self.scale
        while t < up:
            self._at(t, lambda ts: eng.key_down(key, ts, auto_repeat=True))
            self.log["auto_repeats"] += 1
            t += self.scale / 30.0
        self._at(up, lambda ts: eng.key_up(key, ts), carry=True)

    def _description(self, step: Step, phase: DescriptionPhase) -> None:
        pool = list(_SENTENCES[self.moods.get(step.memory_id or "", "positive")])
        self.rng.shuffle(pool)
        text = " ".join(pool[: int(self.rng.integers(2, 4))])
        while len(text) < phase.min_chars:
            text += " " + pool[0]
        t = self._limit(phase, self._u(5.0, 10.0))
        # typing: the text grows word by word, as the text box hands it to the engine
        words = text.split(" ")
        for i in range(1, len(words)):
            draft = " ".join(words[:i])
            self._at(t * i / len(words), lambda ts, d=draft: self.engine.draft_description(d, ts))

        def submit(ts: float) -> None:
            if self.engine.submit_description(text, ts):
                self.log["descriptions"] += 1

        self._at(t, submit)

    def _sketch(self, step: Step, phase: SketchPhase) -> None:
        s = self.scale
        t_end = self._limit(phase, self._u(5.0, 9.0))
        strokes = _sketch_strokes(self.rng, phase.width, phase.height)
        n_points = sum(len(st) for st in strokes)
        draw_time = 0.85 * t_end
        dt = draw_time / max(n_points + 2 * len(strokes), 1)
        t = 0.3 * s if 0.3 * s < draw_time else 0.0
        rows = []
        for sid, pts in enumerate(strokes):
            times = t + dt * np.arange(len(pts))
            pressure = np.clip(0.5 + 0.3 * np.sin(np.linspace(0, np.pi, len(pts))), 0, 1)
            block = np.zeros(len(pts), dtype=STROKE_DTYPE)
            block["stroke"] = sid
            block["x"], block["y"] = pts[:, 0], pts[:, 1]
            block["pressure"] = pressure
            rows.append((times, block))
            t = float(times[-1]) + 2 * dt  # lift the pen between strokes
        eng = self.engine
        start = self._start

        def send(times: np.ndarray, block: np.ndarray) -> Callable[[float], None]:
            def apply(_ts: float) -> None:
                out = block.copy()
                out["timestamp"] = start + times  # each point's own LSL time
                eng.add_sketch_points(out)
                self.log["sketch_points"] += len(out)

            return apply

        for times, block in rows:  # sent at the end of each stroke, as the canvas does
            self._at(float(times[-1]), send(times, block))
        png = _render_png(strokes, phase.width, phase.height)
        self._at(
            t_end, lambda ts: eng.finish_sketch(png, ts, width=phase.width, height=phase.height)
        )

    def _melody(self, step: Step, phase: MelodyPhase) -> None:
        mood = self.moods.get(step.memory_id or "", "positive")
        seconds = float(min(phase.record_seconds, 4.0))
        audio = synthesize_melody(self.rng, seconds, mood=mood)
        s = self.scale
        t0 = self._limit(phase, self._u(1.0, 2.0))
        if phase.max_duration is not None:
            span = min(seconds * s, 0.8 * phase.max_duration - t0)
        else:
            span = seconds * s
        span = max(span, 0.05 * s)
        eng = self.engine
        if "microphone" not in phase.sources:  # the participant chooses an audio file instead
            origin = f"file:simulated-melody-{step.memory_id}.wav"

            def choose(ts: float) -> None:
                eng.add_melody_audio(audio, sample_rate=MELODY_RATE, origin=origin)
                self.log["melody_samples"] += len(audio)

            self._at(t0, choose)
            self._at(t0 + 0.5 * s, lambda ts: eng.finish_melody(ts, origin=origin))
            return
        chunks = 8
        edges = np.linspace(0, len(audio), chunks + 1).astype(int)
        recording_start = self._start + t0  # LSL time the microphone starts recording
        for i in range(chunks):
            piece = audio[edges[i] : edges[i + 1]]

            def feed(ts: float, piece: np.ndarray = piece) -> None:
                eng.add_melody_audio(
                    piece,
                    sample_rate=MELODY_RATE,
                    origin="microphone",
                    start_timestamp=recording_start,
                )
                self.log["melody_samples"] += len(piece)

            # a chunk is delivered when the microphone has recorded it
            self._at(t0 + span * (i + 1) / chunks, feed)
        self._at(t0 + span + 0.2 * s, lambda ts: eng.finish_melody(ts, origin="microphone"))

    # A simulated participant recognises their memory's reconstruction more often than not:
    # it gets the higher ratings and the choice this often.
    recognises = 0.75

    def _watch(self, step: Step, phase: PreferenceVideo) -> None:
        """The video starts at once (no sound device: latency unknown); while it plays the
        participant moves the rating cursor to the valence each segment shows, a moment after
        it begins (holding the key that moves it as long as the distance takes at the
        cursor's speed). Seconds of video, not scaled."""
        self._at(0.0, lambda ts: self.engine.video_started(ts, output_latency=None))
        if not phase.rate_valence or step.video is None:
            return
        cfg = self.engine.protocol.valence
        cursor = cfg.start
        for start, end, valence in step.video.segments:
            target = float(np.clip(valence + self.rng.normal(0, 0.1), -1, 1))
            delta = target - cursor
            if abs(delta) < 0.1:
                continue
            down = start + self._u(0.3, 0.7)
            hold = min(abs(delta) / cfg.speed, max(0.1, end - down - 0.05))
            key = cfg.positive_key if delta > 0 else cfg.negative_key
            self._at(down, lambda ts, k=key: self.engine.key_down(k, ts))
            self._at(down + hold, lambda ts, k=key: self.engine.key_up(k, ts), carry=True)
            self.log["positive_presses" if delta > 0 else "negative_presses"] += 1
            cursor += np.sign(delta) * hold * cfg.speed

    def _rate_video(self, step: Step, phase: PreferenceRating) -> None:
        own = step.video is not None and step.video.shows == "reconstruction"
        high = own == (self.rng.random() < self.recognises)
        t = self._limit(phase, self._u(1.0, 2.0))
        for scale in phase.scales:
            mid = (scale.min + scale.max) / 2
            lo, hi = (int(np.ceil(mid)), scale.max) if high else (scale.min, int(np.floor(mid)))
            value = int(self.rng.integers(lo, hi + 1))
            self._at(t, lambda ts, sc=scale.id, v=value: self.engine.rate_video(sc, v, ts))
            t += self._u(0.5, 1.0) * self.scale

    def _choose(self, step: Step, phase: PreferenceChoice) -> None:
        own = next(
            (
                s.label
                for s in self.engine.steps
                if s.block == step.block
                and s.memory_id == step.memory_id
                and s.video is not None
                and s.video.shows == "reconstruction"
            ),
            "A",
        )
        other = "B" if own == "A" else "A"
        label = own if self.rng.random() < self.recognises else other
        t = self._limit(phase, self._u(1.0, 2.5))
        self._at(t, lambda ts: self.engine.choose_video(label, ts))

    def _sam(self, step: Step, phase: SamPhase) -> None:
        mood = self.moods.get(step.memory_id or "", "positive")
        t = self._limit(phase, self._u(1.5, 3.0))
        norms = {}
        if step.clip is not None:  # a rating after a clip: near the clip's norm, if it has one
            norms = {"valence": step.clip.valence, "arousal": step.clip.arousal}
        for scale in phase.scales:
            if norms.get(scale) is not None:
                value = int(np.clip(round(norms[scale] + self.rng.normal(0, 0.7)), 1, 9))
            elif scale == "valence":
                value = int(
                    self.rng.integers(6, 9) if mood == "positive" else self.rng.integers(2, 5)
                )
            else:
                value = int(self.rng.integers(3, 8))

            def rate(ts: float, scale: str = scale, value: int = value) -> None:
                self.engine.rate_sam(scale, value, ts)
                self.log["sam_ratings"] += 1

            self._at(t, rate)
            t += self._u(0.5, 1.5) * self.scale
            if phase.max_duration is not None:
                t = min(t, 0.9 * phase.max_duration)


# ---------------------------------------------------------------------- content
def _sketch_strokes(rng: np.random.Generator, width: int, height: int) -> list[np.ndarray]:
    """A horizon, a sun and a few waves or hills, with a little hand tremor."""
    w, h = float(width), float(height)
    strokes = []
    x = np.linspace(0.05 * w, 0.95 * w, 60)
    horizon = 0.6 * h + rng.normal(0, 0.005 * h, len(x))
    strokes.append(np.column_stack([x, horizon]))
    cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.15, 0.35) * h, 0.06 * min(w, h)
    a = np.linspace(0, 2 * np.pi, 40)
    strokes.append(np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)]))
    for k in range(int(rng.integers(2, 4))):
        x = np.linspace(0.1 * w, 0.9 * w, 50)
        y = (0.7 + 0.08 * k) * h + 0.02 * h * np.sin(x / w * 2 * np.pi * rng.uniform(2, 4))
        strokes.append(np.column_stack([x, y + rng.normal(0, 0.003 * h, len(x))]))
    return [np.clip(s, 0, [w - 1, h - 1]).astype(np.float32) for s in strokes]


def _render_png(strokes: list[np.ndarray], width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for pts in strokes:
        draw.line([tuple(map(float, p)) for p in pts], fill="black", width=3, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def synthesize_melody(
    rng: np.random.Generator, seconds: float, *, mood: str = "positive", rate: int = MELODY_RATE
) -> np.ndarray:
    """A hummed-sounding tune: notes of a major (positive) or minor (negative) scale.

    Each note is a fundamental with soft harmonics, a slight vibrato and an attack/release
    envelope, plus a little breath noise; the result is float32 mono in -1..1.
    """
    steps = [0, 2, 4, 7, 9, 12] if mood == "positive" else [0, 2, 3, 7, 8, 12]
    base = 220.0 if mood == "positive" else 196.0
    n_total = int(seconds * rate)
    out = np.zeros(n_total, dtype=np.float64)
    pos = 0
    while pos < n_total:
        dur = int(rng.uniform(0.25, 0.6) * rate)
        n = min(dur, n_total - pos)
        t = np.arange(n) / rate
        f = base * 2 ** (steps[int(rng.integers(len(steps)))] / 12)
        phase = 2 * np.pi * f * t + 0.3 * np.sin(2 * np.pi * 5.5 * t)  # vibrato
        tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)
        env = np.minimum(1.0, np.minimum(t / 0.03, (n / rate - t) / 0.08).clip(0))
        out[pos : pos + n] = 0.35 * tone * env
        pos += n
    out += rng.normal(0, 0.005, n_total)
    return np.clip(out, -1, 1).astype(np.float32)
