"""Transitions across segment boundaries: cut, crossfade and morph (in-between keyframes painted
from interpolated diffusion inputs), with tiny random models loaded through the user's path."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
from test_generation_helpers import decode_frames, write_session

from app.cli import main

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
]

FAST = ["--steps", "1", "--fps", "8", "--crossfade", "0.5", "--transition", "0.5", "--quiet"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "models"
    for key in ("stable-diffusion", "musicgen-melody", "clip"):
        assert main(["models", "make-tiny", str(d), "--only", key]) == 0
    return d


def _clip_embed(folder, images) -> np.ndarray:
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    proc = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        x = proc(images=[np.asarray(i) for i in images], return_tensors="pt")["pixel_values"]
        e = model.get_image_features(pixel_values=x)
    return np.asarray(getattr(e, "pooler_output", e), dtype=np.float64)


def test_morph_inbetweens_lie_between_the_two_keyframes(tiny_models):
    from generation.images import ImageSettings, KeyframePainter
    from generation.models import pick_device

    sd = tiny_models / "stable-diffusion-v1-5"
    painter = KeyframePainter(sd, None, False, pick_device("cpu"))
    settings = ImageSettings(steps=2)
    prompts = ("a beach at dawn, joyful, bright, warm", "a beach at dawn, gloomy, dark, cold")
    keys = [painter.paint(p, seed=0, sketch_png=None, settings=settings) for p in prompts]
    a, b = (painter.inputs(p, seed=0, sketch_png=None, settings=settings) for p in prompts)
    us = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    pics = [painter.inbetween(a, b, u, sketch_png=None, settings=settings) for u in us]
    # The ends are the keyframes themselves: same noise, same embeddings, same draws.
    assert np.array_equal(np.asarray(pics[0]), np.asarray(keys[0]))
    assert np.array_equal(np.asarray(pics[-1]), np.asarray(keys[1]))
    emb = _clip_embed(tiny_models / "clip", pics)
    to_a = np.linalg.norm(emb - emb[0], axis=1)
    to_b = np.linalg.norm(emb - emb[-1], axis=1)
    apart = to_a[-1]
    assert apart > 0
    # Every in-between is nearer each keyframe than the keyframes are to each other, and the
    # distance from the first keyframe grows along the window (from the second one shrinks).
    assert np.all(to_a[1:-1] < apart) and np.all(to_b[1:-1] < apart)
    assert np.all(np.diff(to_a) > 0) and np.all(np.diff(to_b) < 0)
    pixels = [np.abs(np.asarray(p, float) - np.asarray(keys[0], float)).mean() for p in pics]
    assert np.all(np.diff(pixels) > 0)


def _still(value: float) -> np.ndarray:
    return np.full((4, 4, 3), value, np.float32)


def test_render_modes_keep_the_frame_count_and_cut_jumps_once():
    from generation.images import render_frames

    keys = [_still(0), _still(200)]
    starts, total, fps = [0.0, 2.0], 4.0, 8.0
    between = [[_still(50), _still(100), _still(150)]]
    runs = {
        mode: np.array(
            [f[0, 0, 0] for f in render_frames(keys, starts, total, fps, 1.0, mode, between)],
            float,
        )
        for mode in ("cut", "crossfade", "morph")
    }
    assert {len(v) for v in runs.values()} == {round(total * fps)}
    steps = {mode: np.abs(np.diff(v)) for mode, v in runs.items()}
    # cut: one jump, at the boundary (frame 16 is the first after 2.0 s); nothing else moves.
    assert np.count_nonzero(steps["cut"]) == 1 and steps["cut"][15] == 200
    # crossfade and morph spread the change over the 1 s window (8 frames, 9 steps).
    for mode in ("crossfade", "morph"):
        assert np.count_nonzero(steps[mode]) == 9 and steps[mode].max() < 200 / 3
    # morph passes through the in-betweens at a constant pace (half a step at each edge).
    moving = steps["morph"][steps["morph"] > 0]
    assert np.allclose(moving[1:-1], 25.0, atol=1) and np.allclose(moving[[0, -1]], 12.5, atol=1)
    assert runs["morph"][0] == 0 and runs["morph"][-1] == 200


def test_control_gets_its_own_morph_frames(tiny_models, tmp_path):
    session = write_session(tmp_path / "s.h5", recall=15.0)
    out = tmp_path / "gen"
    rc = main(
        ["generate", str(session), "--models", str(tiny_models), "--out", str(out), *FAST,
         "--duration", "4", "--min-segment", "2", "--control", "--no-evaluate",
         "--morph-steps", "3"]
    )  # fmt: skip
    assert rc == 0
    folder = out / "run-001" / "m1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["transition_mode"] == "morph"  # the default
    tr = manifest["transitions"]
    assert tr["mode"] == "morph" and tr["morph_steps"] == 3 and tr["from"] == "keyframes"
    order = manifest["control"]["order"]
    pairs = {f"{a}-{b}" for a, b in pairwise(order)}
    assert {"0-1", "1-2"} <= set(tr["inbetweens"]) and pairs <= set(tr["inbetweens"])
    for files in tr["inbetweens"].values():
        assert len(files) == 3 and all((folder / f).exists() for f in files)
    # The control video shows its own pairs' in-betweens in the middle of its windows.
    from PIL import Image

    frames = decode_frames(folder / "control_reordered.mp4").astype(float)
    csegs = manifest["control"]["segments"]
    for k, (a, b) in enumerate(pairwise(order)):
        mid = Image.open(folder / tr["inbetweens"][f"{a}-{b}"][1])
        frame = frames[int(csegs[k + 1]["start"] * 8)]  # the frame just after the boundary
        own = np.abs(frame - np.asarray(mid, float)).mean()
        keys = [np.asarray(Image.open(folder / f"segment-{i:02d}.png"), float) for i in (a, b)]
        assert own <= min(np.abs(frame - k_).mean() for k_ in keys) + 1.0
    assert manifest["audio_video"]["probe"]["frames"] == round(manifest["total_seconds"] * 8)
    assert "transitions" in manifest["timings_s"]


@pytest.mark.parametrize(
    ("extra", "says"),
    [(["--transition-mode", "dissolve"], "--transition-mode 'dissolve'"),
     (["--morph-steps", "0"], "--morph-steps")],
)  # fmt: skip
def test_bad_transition_options_are_one_line(tiny_models, tmp_path, capsys, extra, says):
    session = write_session(tmp_path / "s.h5", recall=6.0)
    rc = main(["generate", str(session), "--models", str(tiny_models), *FAST, *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s-generation").exists()
