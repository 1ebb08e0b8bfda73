"""Animated segments (Stable Video Diffusion, AnimateDiff) with tiny random models.

The models are written by ``recall-lab models make-tiny`` and loaded back through the same
``from_pretrained(local_files_only=True)`` path used for the real ones; the MP4s are decoded
with ffmpeg to check what a viewer would see.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_generation_helpers import decode_frames, inside_segments, motion, write_session

from app.cli import main

pytestmark = [
    pytest.mark.timeout(600),
    # diffusers' own deprecation notices about its internals are not ours to fix.
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    # diffusers' EulerDiscreteScheduler (Stable Video Diffusion's) calls np.array() on a torch
    # tensor, which numpy 2 flags for torch's __array__ signature; harmless, and upstream's.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

FPS = 8
FAST = ["--steps", "2", "--fps", str(FPS), "--crossfade", "0.5", "--transition", "0.5"]
FAST += ["--quiet", "--no-evaluate", "--min-segment", "2", "--duration", "3"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "models"
    keys = ["stable-diffusion", "musicgen-melody", "svd", "animatediff"]
    assert main(["models", "make-tiny", str(d), "--only", *keys]) == 0
    return d


@pytest.fixture()
def required_only(tiny_models, tmp_path):
    """A models folder holding only the required models (links to the tiny ones)."""
    d = tmp_path / "required"
    d.mkdir()
    for name in ("stable-diffusion-v1-5", "musicgen-melody"):
        (d / name).symlink_to(tiny_models / name, target_is_directory=True)
    return d


def _generate(session, models, out, *extra):
    return main(
        ["generate", str(session), "--models", str(models), "--out", str(out), *FAST, *extra]
    )


@pytest.mark.slow
def test_animatediff_moves_within_segments_and_stays_in_sync(tiny_models, tmp_path, capsys):
    from generation.video import probe_durations

    session = write_session(tmp_path / "s.h5", recall=15.0)
    out = tmp_path / "gen"
    assert _generate(session, tiny_models, out, "--animation", "animatediff", "--control") == 0
    assert "animated with animatediff: 16 frames at 8 fps" in capsys.readouterr().out
    folder = out / "run-001" / "m1"
    manifest = json.loads((folder / "manifest.json").read_text())
    anim = manifest["animation"]
    assert anim["model"] == "animatediff" and anim["tiny"] is True
    assert anim["pipeline"] == "AnimateDiffVideoToVideoPipeline"
    assert (anim["frames"], anim["fps"], anim["steps"], anim["fit"]) == (16, 8.0, 2, "pingpong")
    segs = manifest["segments"]
    assert len(segs) == 3
    for s in segs:
        a = s["animation"]
        assert (a["frames"], a["fps"], a["seed"]) == (16, 8.0, 0)
        clip = probe_durations(folder / a["clip"])
        assert clip["frames"] == 16 and "audio" not in clip
    # Audio length = video length = total segment duration, within one frame.
    total = manifest["total_seconds"]
    for name in ("reconstruction.mp4", "control_reordered.mp4"):
        probe = probe_durations(folder / name)
        assert probe["frames"] == round(total * FPS)
        assert abs(probe["video"] - total) <= 1 / FPS
        assert abs(probe["audio"] - total) <= 1 / FPS
    # The picture moves inside every segment: not a held still.
    frames = decode_frames(folder / "reconstruction.mp4")
    for idx in inside_segments(manifest):
        assert len(idx) >= 3
        assert motion(frames, idx) > 2.0


def test_svd_stretched_clips_move_and_keep_the_timeline(tiny_models, tmp_path):
    from generation.video import probe_durations

    session = write_session(tmp_path / "s.h5", recall=15.0)
    out = tmp_path / "gen"
    assert _generate(session, tiny_models, out, "--animation-fit", "stretch") == 0
    folder = out / "run-001" / "m1"
    manifest = json.loads((folder / "manifest.json").read_text())
    # auto picks SVD first; its native clip length is the UNet's num_frames.
    anim = manifest["animation"]
    assert (anim["model"], anim["pipeline"]) == ("svd", "StableVideoDiffusionPipeline")
    assert (anim["frames"], anim["fps"], anim["fit"]) == (4, 7.0, "stretch")
    assert [s["animation"]["frames"] for s in manifest["segments"]] == [4, 4, 4]
    total = manifest["total_seconds"]
    probe = probe_durations(folder / "reconstruction.mp4")
    assert probe["frames"] == round(total * FPS)
    assert abs(probe["video"] - total) <= 1 / FPS and abs(probe["audio"] - total) <= 1 / FPS
    frames = decode_frames(folder / "reconstruction.mp4")
    for idx in inside_segments(manifest):
        assert len(idx) >= 3
        assert motion(frames, idx) > 2.0


def test_missing_animation_model_is_one_clear_line(required_only, tmp_path, capsys):
    session = write_session(tmp_path / "s.h5", recall=9.0)
    for key, repo in (
        ("svd", "stabilityai/stable-video-diffusion-img2vid-xt"),
        ("animatediff", "guoyww/animatediff-motion-adapter-v1-5-2"),
    ):
        assert _generate(session, required_only, tmp_path / "o", "--animation", key) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"model {key} ({repo}) not found" in err and f"hf download {repo}" in err
    assert not (tmp_path / "o").exists()  # failed before any work


def test_animatediff_animates_a_keyframe_from_the_models_folder(tiny_models):
    """AnimateDiff loaded as generate loads it (motion adapter + the SD 1.5 folder)."""
    from PIL import Image

    from generation.animation import AnimationSettings, SegmentAnimator, choose_animation
    from generation.models import pick_device

    key, folder = choose_animation("animatediff", tiny_models)
    settings = AnimationSettings(choice="animatediff", frames=6)
    animator = SegmentAnimator(
        key, folder, tiny_models / "stable-diffusion-v1-5", pick_device("cpu"), settings, 2
    )
    rng = np.random.default_rng(0)
    keyframe = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    clip = animator.animate(
        keyframe,
        "a bright joyful beach",
        seed=0,
        guidance_scale=7.5,
        negative_prompt="",
        show_progress=False,
    )
    assert clip.shape == (6, 64, 64, 3) and clip.min() >= 0 and clip.max() <= 255
    assert np.abs(np.diff(clip, axis=0)).mean() > 2.0  # the frames move
    assert animator.info()["pipeline"] == "AnimateDiffVideoToVideoPipeline"
    again = animator.animate(
        keyframe,
        "a bright joyful beach",
        seed=0,
        guidance_scale=7.5,
        negative_prompt="",
        show_progress=False,
    )
    assert np.allclose(clip, again, atol=1e-3)  # the recorded seed reproduces the clip


def test_clip_timing_follows_the_video_clock():
    from generation.animation import SegmentVisual

    clip = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3))
    ping = SegmentVisual(clip, fps=4.0, fit="pingpong")
    # Forwards at 4 clip frames per second, then backwards, never jumping back to frame 0.
    t = np.arange(0, 4, 0.125)
    pos = np.array([ping.position(x, 10.0) for x in t])
    assert pos[:9].tolist() == pytest.approx(np.arange(0, 4.5, 0.5).tolist())
    assert pos[8] == 4.0 and pos[16] == pytest.approx(0.0)
    assert np.abs(np.diff(pos)).max() <= 0.5 + 1e-9  # smooth: no loop restart
    # Before the segment (a crossfade) the motion mirrors instead of freezing.
    assert ping.position(-0.25, 10.0) == pytest.approx(1.0)
    stretch = SegmentVisual(clip, fps=4.0, fit="stretch")
    assert stretch.position(0.0, 2.0) == 0.0 and stretch.position(2.0, 2.0) == 4.0
    assert stretch.position(1.0, 2.0) == 2.0 and stretch.position(3.0, 2.0) == 4.0
    # Between clip frames the picture blends the two neighbours.
    assert ping.frame_at(0.125, 10.0)[0, 0, 0] == pytest.approx(0.5)


def test_render_frames_count_and_smooth_boundaries():
    from generation.animation import SegmentVisual
    from generation.images import render_frames

    rng = np.random.default_rng(0)
    # Two slowly drifting clips of different brightness, and a still.
    ramp = np.linspace(0, 20, 8, dtype=np.float32)[:, None, None, None]
    a = SegmentVisual(40 + ramp + rng.uniform(0, 1, (8, 4, 4, 3)).astype(np.float32), 8.0)
    b = SegmentVisual(200 - ramp + np.zeros((8, 4, 4, 3), np.float32), 8.0)
    still = np.full((4, 4, 3), 120, np.float32)
    starts, total, fps = [0.0, 1.3, 2.1], 3.7, 24.0
    frames = np.array(list(render_frames([a, b, still], starts, total, fps, 0.5)), np.float32)
    assert len(frames) == round(total * fps)
    means = frames.mean(axis=(1, 2, 3))
    # A hard cut would jump by ~140 grey levels at 1.3 s; the crossfade spreads it out.
    assert np.abs(np.diff(means)).max() < 30
    # Far from the boundaries each segment shows its own picture.
    t = (np.arange(len(frames)) + 0.5) / fps
    assert means[t < 1.0].max() < 70 and means[(t > 1.6) & (t < 1.8)].min() > 170
    assert np.allclose(means[t > 2.5], 120, atol=0.6)
