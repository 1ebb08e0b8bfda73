"""``recall-lab generate``: one memory -> segments, prompts, keyframes, music, MP4, manifest.

Stages run one model at a time (Stable Diffusion, then the animation model when one is present,
then MusicGen, then the evaluators), each
freed before the next loads, so a full-size run fits in one GPU or a laptop's memory.
Results are written to a new output folder and recorded in the session file under
``/derived/generation/run-NNN``; earlier runs are never overwritten.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import Cancelled, RecallLabError, SessionFileError
from data_schema.progress import Progress, run_folder
from generation.animation import AnimationSettings
from generation.images import (
    ImageSettings,
    check_transition,
    paint_transitions,
    render_frames,
    step_counter,
)
from generation.music import (
    GenerationCancelled,
    MusicChain,
    MusicPart,
    MusicSettings,
    equal_power_join,
    normalize_loudness,
)
from generation.prompts import Lexicon, build_prompts
from generation.segments import (
    Segment,
    SegmentRules,
    control_order,
    reorder,
    rescale,
    segment_trajectory,
)

log = logging.getLogger(__name__)

FALLBACK_DESCRIPTION = "a personal memory"


@dataclass
class GenerateConfig:
    """Everything a generation run depends on (stored in the manifest)."""

    affect: str = "reported"
    memory: str | None = None
    out: Path | None = None
    models: Path | None = None
    seed: int = 0
    fps: float = 24.0
    transition: float = 1.0
    #: How the picture moves across a segment boundary: cut, crossfade or morph (in-between
    #: keyframes painted from interpolated diffusion inputs; see generation.images).
    transition_mode: str = "morph"
    duration: float | None = None
    control: bool = False
    control_seed: int = 1
    evaluate: bool = True
    device: str = "auto"
    lexicon: Path | None = None
    segment_rules: SegmentRules = field(default_factory=SegmentRules)
    music: MusicSettings = field(default_factory=MusicSettings)
    #: "transformers" (in this environment) or "audiocraft" (``make audiocraft-env``; the
    #: checkpoint in ``<models>/musicgen-melody-audiocraft/``).
    music_backend: str = "transformers"
    images: ImageSettings = field(default_factory=ImageSettings)
    animation: AnimationSettings = field(default_factory=AnimationSettings)
    show_progress: bool = True
    #: Music library whose clips, chosen per segment by the EEG (music-supervised encoder
    #: trained on the session's listening blocks), condition MusicGen; None: the
    #: participant's guiding melody only.
    melody_library: Path | None = None
    #: Weight of the chosen clip against the participant's melody (1: the clip alone).
    melody_mix: float = 1.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))


@dataclass
class MemoryResult:
    """What was made for one memory."""

    memory: str
    folder: Path
    video: Path
    control_video: Path | None
    manifest: dict[str, Any]


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def choose_memories(session: Any, memory: str | None) -> list[str]:
    """The memory ids to generate: the one asked for, else all in recall order."""
    if not session.memories:
        raise SessionFileError(
            f"{session.path} has no memories (/memories); record a session with a protocol "
            "that asks for a description, sketch or melody"
        )
    if memory is not None:
        if memory not in session.memories:
            raise RecallLabError(
                f"memory {memory!r} is not in {session.path}; it has "
                f"{', '.join(sorted(session.memories))}"
            )
        return [memory]
    return sorted(session.memories, key=lambda m: (session.memories[m].attrs.get("index", 0), m))


def memory_steps(cfg: GenerateConfig, prefix: str = "") -> list[str]:
    """The progress steps of one memory, in order (``prefix`` names the memory)."""
    from generation.animation import choose_animation

    steps = ["keyframes"]
    if choose_animation(cfg.animation.choice, cfg.models) is not None:
        steps.append("animation")
    if cfg.transition_mode == "morph":
        steps.append("transitions")
    steps += ["music", "video"]
    if cfg.evaluate:
        steps.append("scores")
    return [prefix + s for s in steps]


def generate_memory(
    session: Any,
    memory_id: str,
    cfg: GenerateConfig,
    folder: Path,
    cancel: threading.Event,
    progress: Progress | None = None,
    prefix: str = "",
    melodies: Any = None,
) -> MemoryResult:
    """Make the reconstruction of one memory in ``folder``.

    ``progress`` gets the steps of :func:`memory_steps` (named with ``prefix``);
    ``melodies`` (:class:`generation.melody_retrieval.LibraryMelodies`, fitted) chooses each
    segment's melody from a library by the EEG."""
    from itertools import pairwise

    from PIL import Image

    from generation.affect import affect_trajectory
    from generation.animation import SegmentAnimator, SegmentVisual, choose_animation
    from generation.images import KeyframePainter
    from generation.models import is_tiny, model_path, pick_device, require_model
    from generation.music import MusicGenerator
    from generation.video import probe_durations, write_mp4, write_wav

    prog = progress or Progress("none")
    prog.cancel = cancel
    device = pick_device(cfg.device)
    sd = require_model("stable-diffusion", cfg.models)
    if cfg.music_backend == "audiocraft":  # audiocraft's own checkpoint, beside the others
        mg = sd.parent / "musicgen-melody-audiocraft"
    else:
        mg = require_model("musicgen-melody", cfg.models)
    cn = model_path("controlnet-scribble", cfg.models)
    anim = choose_animation(cfg.animation.choice, cfg.models)
    mem = session.memories[memory_id]
    notes: list[str] = []
    timings: dict[str, float] = {}

    # --- affect -> segments
    traj = affect_trajectory(session, memory_id, cfg.affect)
    segments = segment_trajectory(traj.times, traj.valence, cfg.segment_rules)
    chosen: dict[int, Any] = {}
    if melodies is not None:  # on the recall's own timeline, before any rescaling
        chosen = {c.segment: c for c in melodies.choose(segments, float(traj.times[0]))}
    if cfg.duration:
        segments = rescale(segments, cfg.duration)
    total = segments[-1].end
    # Every video's segment order: transitions depend on the neighbours, so the control gets
    # its own.
    orders = [list(range(len(segments)))]
    if cfg.control:
        orders.append(control_order(segments, cfg.control_seed))

    # --- inputs the participant gave (each may be missing)
    description = (mem.description or "").strip()
    if not description:
        description = str(mem.attrs.get("cue") or "").strip() or FALLBACK_DESCRIPTION
        notes.append(f"no description: prompts use {description!r}")
    sketch = mem.sketch_png
    if not sketch:
        notes.append("no sketch: keyframes are text-to-image")
    melody = mem.melody
    if melody is None or len(melody) == 0 or not mem.melody_rate:
        melody = None
        notes.append("no guiding melody: music is conditioned on the prompt only")

    lexicon = Lexicon.load(cfg.lexicon)

    # --- keyframes
    t0 = time.perf_counter()
    painter = KeyframePainter(sd, cn, bool(sketch), device, cancel)
    prompts = build_prompts(description, segments, lexicon, count_tokens=painter.count_tokens)
    keyframes = []
    with prog.step(prefix + "keyframes", len(segments) * cfg.images.steps, "step") as step:
        count = step_counter(step, len(segments))
        for seg, pr in zip(segments, prompts):
            img = painter.paint(
                pr.image,
                seed=cfg.seed,
                sketch_png=sketch,
                settings=cfg.images,
                show_progress=False,
                counter=count,
            )
            img.save(folder / f"segment-{seg.index:02d}.png")
            keyframes.append(img)
    image_mode, size = painter.mode, painter.size
    if anim is not None or cfg.transition_mode != "morph":
        painter = None
        _free()
    timings["images"] = time.perf_counter() - t0

    # --- animation: one clip per segment from its keyframe, replacing the still
    visuals = [SegmentVisual.still(np.asarray(k.convert("RGB"))) for k in keyframes]
    animation: dict[str, Any] | None = None
    if anim is not None:
        t0 = time.perf_counter()
        key, anim_folder = anim
        animator = SegmentAnimator(
            key, anim_folder, sd, device, cfg.animation, cfg.images.steps, cancel
        )
        animation = {"model": key, "path": str(anim_folder), "tiny": is_tiny(anim_folder)}
        animation.update(animator.info())
        step = prog.step(prefix + "animation", len(segments) * animator.steps, "step")
        count = step_counter(step, len(segments))
        for n, (seg, pr, kf) in enumerate(zip(segments, prompts, keyframes)):
            clip = animator.animate(
                kf.convert("RGB"),
                pr.image,
                seed=cfg.seed,
                guidance_scale=cfg.images.guidance_scale,
                negative_prompt=cfg.images.negative_prompt,
                show_progress=False,
                counter=count,
            )
            visuals[n] = SegmentVisual(clip, animator.fps, cfg.animation.fit)
            h, w = clip.shape[1:3]
            write_mp4(
                folder / f"segment-{seg.index:02d}-animation.mp4",
                (np.clip(f + 0.5, 0, 255).astype(np.uint8) for f in clip),
                (w, h),
                animator.fps,
                None,
            )
        step.close()
        del animator
        _free()
        timings["animation"] = time.perf_counter() - t0
    elif cfg.animation.choice == "auto":
        notes.append("no animation model (svd/ or animatediff-motion-adapter/): still keyframes")

    # --- transitions: in-between keyframes at every boundary of every video (morph)
    inbetweens: dict[tuple[int, int], list[np.ndarray]] = {}
    if cfg.transition_mode == "morph":
        t0 = time.perf_counter()
        if painter is None:
            painter = KeyframePainter(sd, cn, bool(sketch), device, cancel)
        with prog.step(prefix + "transitions", 0, "step") as step:
            inbetweens = paint_transitions(
                painter,
                orders,
                [pr.image for pr in prompts],
                visuals,
                [s.duration for s in segments],
                seed=cfg.seed,
                sketch_png=sketch,
                settings=cfg.images,
                step=step,
            )
        painter = None
        _free()
        for (a, b), frames in inbetweens.items():
            for k, f in enumerate(frames):
                Image.fromarray(np.clip(f + 0.5, 0, 255).astype(np.uint8)).save(
                    folder / f"transition-{a:02d}-{b:02d}-{k + 1}.png"
                )
        timings["transitions"] = time.perf_counter() - t0

    # --- music
    t0 = time.perf_counter()
    if cfg.music_backend == "audiocraft":
        from generation.music_audiocraft import AudiocraftMusicGenerator

        music = AudiocraftMusicGenerator(mg, device, cancel)
    else:
        music = MusicGenerator(mg, device, cancel)
    rate = music.sampling_rate
    parts = []
    for seg, pr in zip(segments, prompts):
        seg_melody, seg_rate, seg_offset = melody, mem.melody_rate, seg.start
        if seg.index in chosen:
            seg_melody, seg_rate = melodies.melody(
                chosen[seg.index], melody, mem.melody_rate, seg.start, cfg.melody_mix
            )
            seg_offset = 0.0
        # In a crossfade join every segment gets a tail so any order (the control) can be joined.
        parts.append(
            MusicPart(
                pr.music,
                seg.duration + cfg.music.tail(),
                seg_melody,
                seg_rate,
                seg_offset,
                cfg.seed + seg.index,
            )
        )
    # A continuation depends on what precedes it: every video's order (the control's too)
    # gets its own chain.
    chains: dict[tuple[int, ...], MusicChain] = {}
    n_chains = len(orders) if cfg.music.join == "continue" else 1
    n_frames = int(n_chains * sum(p.seconds * music.frame_rate for p in parts))
    with prog.step(prefix + "music", n_frames, "frame") as bar:
        if cfg.music.join == "continue":
            for order in orders:
                chain = music.generate_chain([parts[i] for i in order], cfg.music, bar)
                chains[tuple(order)] = chain
                if order == orders[0]:
                    clips, windows = chain.clips, chain.plans
        else:
            clips, windows = [], []
            for part in parts:
                audio, plan = music.generate_part(part, cfg.music, progress=bar)
                clips.append(audio)
                windows.append(plan)
    for seg, audio in zip(segments, clips):
        write_wav(folder / f"segment-{seg.index:02d}.wav", audio, rate)

    def join_music(order: list[int], segs: list[Segment]) -> np.ndarray:
        if tuple(order) in chains:
            return chains[tuple(order)].track
        return equal_power_join(
            [clips[i] for i in order], [s.duration for s in segs], rate, cfg.music.crossfade
        )

    del music
    _free()
    timings["music"] = time.perf_counter() - t0

    # --- compose
    t0 = time.perf_counter()
    n_videos = 2 if cfg.control else 1
    video_step = prog.step(prefix + "video", n_videos * round(total * cfg.fps), "frame")

    def counted(frames):
        for f in frames:
            video_step.update(1)
            yield f

    def compose(order: list[int], name: str) -> tuple[Path, list[Segment], dict]:
        segs = reorder(segments, order)
        joined = join_music(order, segs)
        joined = normalize_loudness(joined, cfg.music.target_rms_db)
        wav = folder / f"{name}.wav"
        write_wav(wav, joined, rate)
        mp4 = folder / f"{name}.mp4"
        frames = render_frames(
            [visuals[i] for i in order],
            [s.start for s in segs],
            total,
            cfg.fps,
            cfg.transition,
            cfg.transition_mode,
            [inbetweens.get(pair, []) for pair in pairwise(order)],
        )
        write_mp4(mp4, counted(frames), (size, size), cfg.fps, wav)
        probe = probe_durations(mp4)
        return mp4, segs, {"samples": len(joined), "probe": probe}

    video, _, av = compose(orders[0], "reconstruction")
    control_video, control = None, None
    if cfg.control:
        order = orders[1]
        control_video, csegs, cav = compose(order, "control_reordered")
        control = {
            "seed": cfg.control_seed,
            "order": order,
            "video": control_video.name,
            "segments": [s.to_dict() for s in csegs],
            "audio_video": cav,
            # continue: the control's music is its own chain (windows per segment, in order)
            "music_windows": (chains[tuple(order)].plans if tuple(order) in chains else None),
        }
    video_step.close()
    timings["compose"] = time.perf_counter() - t0

    # --- evaluation
    t0 = time.perf_counter()
    evaluation: dict[str, Any] = {}
    if cfg.evaluate:
        with prog.step(prefix + "scores", 2, "model") as step:
            evaluation = evaluate_outputs(
                cfg, keyframes, clips, rate, segments, prompts, device, notes, step
            )
    timings["evaluate"] = time.perf_counter() - t0

    manifest = {
        "memory": memory_id,
        "affect": {"kind": traj.kind, "source": traj.source},
        "total_seconds": total,
        "fps": cfg.fps,
        "sample_rate": rate,
        "music_join": cfg.music.join,
        "seed": cfg.seed,
        "device": asdict(device),
        "models": {
            "stable-diffusion": {"path": str(sd), "mode": image_mode, "tiny": is_tiny(sd)},
            "musicgen-melody": (
                {"path": str(mg), "backend": "audiocraft"}
                if cfg.music_backend == "audiocraft"
                else {"path": str(mg), "tiny": is_tiny(mg), "backend": "transformers"}
            ),
        },
        "animation": animation,
        "transitions": {
            "mode": cfg.transition_mode,
            "seconds": cfg.transition,
            "morph_steps": cfg.images.morph_steps if inbetweens else 0,
            "from": "clip frames" if animation else "keyframes",
            "inbetweens": {
                f"{a}-{b}": [f"transition-{a:02d}-{b:02d}-{k + 1}.png" for k in range(len(f))]
                for (a, b), f in inbetweens.items()
            },
        },
        "melody_library": (
            None
            if melodies is None
            else {
                "folder": str(melodies.library.folder),
                "mix": cfg.melody_mix,
                "encoder": "music_supervised, trained on the session's listening blocks",
                "segments": [chosen[i].to_dict() for i in sorted(chosen)],
            }
        ),
        "description": description,
        "segments": [
            {
                **s.to_dict(),
                "prompt_image": p.image,
                "prompt_music": p.music,
                "descriptors_image": p.descriptors_image,
                "descriptors_music": p.descriptors_music,
                "description_condensed": p.description_condensed,
                "keyframe": f"segment-{s.index:02d}.png",
                "music": f"segment-{s.index:02d}.wav",
                "image_seed": cfg.seed,
                "music_seed": cfg.seed + s.index,
                "music_windows": w,
                "animation": (
                    {
                        "clip": f"segment-{s.index:02d}-animation.mp4",
                        "seed": cfg.seed,
                        "frames": len(v.frames),
                        "fps": v.fps,
                    }
                    if animation
                    else None
                ),
            }
            for s, p, w, v in zip(segments, prompts, windows, visuals)
        ],
        "video": video.name,
        "audio_video": av,
        "control": control,
        "evaluation": evaluation,
        "timings_s": timings,
        "notes": notes,
        "config": cfg.to_json(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return MemoryResult(memory_id, folder, video, control_video, manifest)


def evaluate_outputs(
    cfg, keyframes, clips, rate, segments, prompts, device, notes, step=None
) -> dict:
    """CLIP/CLAP scores when those models are present (else a note says why not); ``step``
    counts the two scorers."""
    from generation.evaluate import affect_correlation, clap_scores, clip_scores
    from generation.models import model_path

    if not cfg.evaluate:
        return {}
    intended = [s.valence for s in segments]
    out: dict[str, Any] = {"intended_valence": intended}
    clip = model_path("clip", cfg.models)
    if clip:
        sc = clip_scores(clip, keyframes, [p.image for p in prompts], device)
        sc["affect_correlation"] = affect_correlation(intended, sc["valence"])
        out["clip"] = sc
        _free()
    else:
        notes.append("clip model not found: no text-image scores")
    if step is not None:
        step.update(1)
    clap = model_path("clap", cfg.models)
    if clap:
        sc = clap_scores(clap, clips, rate, [p.music for p in prompts], device)
        sc["affect_correlation"] = affect_correlation(intended, sc["valence"])
        out["clap"] = sc
        _free()
    else:
        notes.append("clap model not found: no text-audio scores")
    if step is not None:
        step.update(1)
    return out


def run_generation(
    session_path: str | Path,
    cfg: GenerateConfig,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> list[MemoryResult]:
    """Generate every requested memory of a session and record the run in the session file.

    The output folder (``run-NNN``) and the session's ``/derived/generation`` run appear
    together and complete, or not at all (a cancel or an error removes what was begun).
    """
    from data_schema.reader import read_session
    from generation.animation import choose_animation
    from generation.models import models_dir, require_model

    prog = progress or Progress("bars" if cfg.show_progress else "none")
    if cancel is not None:
        prog.cancel = cancel
    session_path = Path(session_path)
    session = read_session(session_path)
    memories = choose_memories(session, cfg.memory)
    # Fail on missing models (and bad settings) before any work is done.
    require_model("stable-diffusion", cfg.models)
    if cfg.music_backend != "audiocraft":  # audiocraft's checkpoint is checked below
        require_model("musicgen-melody", cfg.models)
    cfg.animation.check()
    check_transition(cfg.transition_mode, cfg.images.morph_steps)
    choose_animation(cfg.animation.choice, cfg.models)
    if cfg.melody_library is not None:
        from protocols.library import load_library

        if not 0.0 < cfg.melody_mix <= 1.0:
            raise RecallLabError(f"--melody-mix {cfg.melody_mix:g}: give a weight in (0, 1]")
        require_model("audio-tagger", cfg.models)
        load_library(cfg.melody_library)
    cfg.models = models_dir(cfg.models)
    if cfg.music_backend == "audiocraft":
        from generation.music_audiocraft import require_audiocraft

        require_audiocraft(cfg.models / "musicgen-melody-audiocraft")
    root = Path(cfg.out or session_path.with_name(session_path.stem + "-generation"))
    prefixes = {m: (f"{m}: " if len(memories) > 1 else "") for m in memories}
    first = ["melody choice"] if cfg.melody_library is not None else []
    prog.plan(
        first + [s for m in memories for s in memory_steps(cfg, prefixes[m])] + ["write results"]
    )
    melodies = None
    if cfg.melody_library is not None:
        from generation.melody_retrieval import LibraryMelodies

        with prog.step("melody choice", 1, "model") as step:
            melodies = LibraryMelodies(session_path, cfg.melody_library, cfg.models).fit()
            step.update(1)
    try:
        with run_folder(root, prog) as folder:
            results = []
            for mid in memories:
                sub = folder.partial / mid
                sub.mkdir()
                log.info("generating memory %s into %s", mid, sub)
                results.append(
                    generate_memory(
                        session, mid, cfg, sub, prog.cancel, prog, prefixes[mid], melodies
                    )
                )
            with prog.committing(), prog.step("write results", 1, "part") as step:
                final = folder.publish()
                results = [_moved(r, folder.partial, final) for r in results]
                _record_run(session_path, cfg, final, results)
                step.update(1)
    except Cancelled as exc:
        if isinstance(exc, GenerationCancelled):
            raise
        raise GenerationCancelled(str(exc)) from None
    return results


def _moved(r: MemoryResult, old: Path, new: Path) -> MemoryResult:
    """``r`` with its paths in the published folder."""

    def move(p: Path | None) -> Path | None:
        return None if p is None else new / p.relative_to(old)

    return MemoryResult(r.memory, move(r.folder), move(r.video), move(r.control_video), r.manifest)


def _record_run(session_path: Path, cfg: GenerateConfig, folder: Path, results) -> None:
    """The run's record in the session file, ``/derived/generation/run-NNN``."""
    from data_schema.derived import new_derived_run

    with new_derived_run(session_path, "generation", cfg.to_json()) as g:
        g.attrs["output_folder"] = str(folder.resolve())
        for r in results:
            m = g.create_group(r.memory)
            m.attrs["manifest"] = json.dumps(r.manifest, default=str)
            m.attrs["video"] = str(r.video.resolve())
            if r.control_video is not None:
                m.attrs["control_video"] = str(r.control_video.resolve())
            m.attrs["evaluation"] = json.dumps(r.manifest["evaluation"], default=str)
            segs = r.manifest["segments"]
            m.create_dataset("segment_start", data=np.array([s["start"] for s in segs]))
            m.create_dataset("segment_end", data=np.array([s["end"] for s in segs]))
            m.create_dataset("segment_valence", data=np.array([s["valence"] for s in segs]))
            m.create_dataset(
                "segment_affect",
                data=np.array(
                    [{"negative": -1, "neutral": 0, "positive": 1}[s["affect"]] for s in segs],
                    dtype=np.int8,
                ),
            )
