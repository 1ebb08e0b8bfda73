"""``recall-lab models`` and ``recall-lab generate`` end to end with tiny random models.

The models are written by ``recall-lab models make-tiny`` and loaded back through the same
``from_pretrained(local_files_only=True)`` path used for the real models.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from test_generation_helpers import decode_frames, inside_segments, motion, write_session

from app.cli import main
from generation.models import ENV_VAR

pytestmark = [
    pytest.mark.timeout(600),
    # transformers warns once that torchvision is absent and it uses the PIL image processor
    # (it is not a Python warning category pytest sees); diffusers' own deprecation notices
    # about its internals are not ours to fix.
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    # diffusers' EulerDiscreteScheduler (Stable Video Diffusion's) calls np.array() on a torch
    # tensor, which numpy 2 flags for torch's __array__ signature; harmless, and upstream's.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "models"
    assert main(["models", "make-tiny", str(d)]) == 0
    return d


FAST = ["--steps", "1", "--fps", "8", "--crossfade", "0.5", "--transition", "0.5", "--quiet"]


def _generate(session, models, out, *extra):
    return main(
        ["generate", str(session), "--models", str(models), "--out", str(out), *FAST, *extra]
    )


def test_models_lists_found_and_missing(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert main(["models", "--models", str(tiny_models)]) == 0
    out = capsys.readouterr().out
    # five kinds, the two animation models, the audio tagger and the face-expression ViT
    assert out.count("found (TINY") == 9
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    assert main(["models"]) == 1  # required models missing
    out = capsys.readouterr().out
    assert "MISSING" in out
    assert "hf download facebook/musicgen-melody --local-dir" in out
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in out
    # The optional animation models, with the exact commands (SVD is gated: licence first).
    assert (
        "hf download stabilityai/stable-video-diffusion-img2vid-xt "
        '--exclude "svd_xt*.safetensors" --local-dir'
    ) in out
    assert "hf download guoyww/animatediff-motion-adapter-v1-5-2 --local-dir" in out
    assert "accept the licence" in out
    assert "hf download MIT/ast-finetuned-audioset-10-10-0.4593 --local-dir" in out


def test_make_tiny_never_overwrites(tiny_models, capsys):
    assert main(["models", "make-tiny", str(tiny_models), "--only", "clip"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_generate_video_assets_manifest_and_control(tiny_models, tmp_path):
    from generation.video import probe_durations

    session = write_session(tmp_path / "s.h5", recall=15.0)
    out = tmp_path / "gen"
    assert (
        _generate(session, tiny_models, out, "--duration", "4", "--control", "--min-segment", "2")
        == 0
    )
    folder = out / "run-001" / "m1"
    manifest = json.loads((folder / "manifest.json").read_text())
    segs = manifest["segments"]
    # Key presses: positive first third, negative last third, neutral between.
    assert [s["affect"] for s in segs] == ["positive", "neutral", "negative"]
    total = manifest["total_seconds"]
    assert total == pytest.approx(4.0)
    assert sum(s["duration"] for s in segs) == pytest.approx(total)
    # One keyframe and one music clip per segment, at the model's resolution / rate.
    from PIL import Image
    from scipy.io import wavfile

    for s in segs:
        with Image.open(folder / s["keyframe"]) as im:
            assert im.size == (64, 64)
        rate, clip = wavfile.read(folder / s["music"])
        assert rate == 32000
        # --music-join continue (default): each segment's stretch of the chain, no tail
        assert len(clip) == round(s["duration"] * rate)
        assert s["image_seed"] == 0  # shared seed for coherence
        assert s["descriptors_image"] == [] or s["prompt_image"].endswith(
            ", ".join(s["descriptors_image"])
        )
    assert segs[0]["descriptors_image"] and segs[2]["descriptors_image"]
    assert not segs[1]["descriptors_image"]
    # Audio length = video length = total segment duration (within one frame).
    rate, audio = wavfile.read(folder / "reconstruction.wav")
    assert len(audio) == round(total * rate)
    probe = probe_durations(folder / "reconstruction.mp4")
    assert probe["video_codec"] == "h264" and probe["audio_codec"] == "aac"
    assert probe["frames"] == round(total * 8)
    assert abs(probe["video"] - total) <= 1 / 8
    assert abs(probe["audio"] - total) <= 1 / 8
    # Manifest: models, modes, timings, evaluation.
    assert manifest["models"]["stable-diffusion"]["mode"] == "controlnet-scribble"
    assert manifest["models"]["musicgen-melody"]["tiny"] is True
    assert set(manifest["timings_s"]) == {
        "images",
        "animation",
        "transitions",
        "music",
        "compose",
        "evaluate",
    }
    # With animation, the morph joins the last frame of each clip to the first of the next.
    assert manifest["transitions"]["from"] == "clip frames"
    assert set(manifest["transitions"]["inbetweens"]) >= {"0-1", "1-2"}
    # With every model present, --animation auto animates with Stable Video Diffusion.
    assert manifest["animation"]["model"] == "svd" and manifest["animation"]["tiny"] is True
    assert all((folder / s["animation"]["clip"]).exists() for s in segs)
    ev = manifest["evaluation"]
    assert len(ev["clip"]["similarity"]) == 3 and len(ev["clap"]["similarity"]) == 3
    assert all(-1 <= v <= 1 for v in ev["clip"]["valence"] + ev["clap"]["valence"])
    assert ev["clip"]["affect_correlation"]["n"] == 3
    # The reordered control: a permutation with the same assets on a new timeline.
    control = manifest["control"]
    assert sorted(control["order"]) == [0, 1, 2] and control["order"] != [0, 1, 2]
    cprobe = probe_durations(folder / "control_reordered.mp4")
    assert abs(cprobe["video"] - total) <= 1 / 8
    assert [s["index"] for s in control["segments"]] == control["order"]
    # Recorded in the session file without touching the recording.
    with h5py.File(session, "r") as f:
        g = f["derived/generation/run-001/m1"]
        assert (
            json.loads(g.attrs["manifest"])["segments"][0]["prompt_image"]
            == segs[0]["prompt_image"]
        )
        assert g.attrs["video"].endswith("reconstruction.mp4")
        assert list(g["segment_affect"][()]) == [1, 0, -1]
        assert f["streams/eeg/data"].shape[0] > 0


def test_generate_without_sketch_melody_description_still_works(tiny_models, tmp_path, capsys):
    session = write_session(
        tmp_path / "bare.h5", recall=9.0, description=None, sketch=False, melody=False
    )
    # Only the required models: --animation auto falls back to still keyframes.
    required = tmp_path / "required"
    required.mkdir()
    for name in ("stable-diffusion-v1-5", "musicgen-melody"):
        (required / name).symlink_to(tiny_models / name, target_is_directory=True)
    out = tmp_path / "gen"
    assert (
        _generate(session, required, out, "--duration", "4", "--no-evaluate", "--min-segment", "2")
        == 0
    )
    printed = capsys.readouterr().out
    assert "no sketch" in printed and "no guiding melody" in printed
    assert "no description" in printed
    assert "no animation model" in printed
    manifest = json.loads((out / "run-001" / "m1" / "manifest.json").read_text())
    assert manifest["models"]["stable-diffusion"]["mode"] == "text2img"
    assert manifest["description"] == "cue 0"  # the memory's cue stands in
    assert manifest["evaluation"] == {}
    assert manifest["animation"] is None
    assert all(s["animation"] is None for s in manifest["segments"])
    frames = decode_frames(out / "run-001" / "m1" / "reconstruction.mp4")
    held = [idx for idx in inside_segments(manifest) if len(idx) >= 2]
    assert held
    for idx in held:
        assert motion(frames, idx) < 1.0  # a held still: only the codec's rounding moves
    # A second run never overwrites the first, in the folder or in the session file.
    assert (
        _generate(
            session,
            tiny_models,
            out,
            "--duration",
            "1",
            "--no-evaluate",
            "--min-segment",
            "2",
            "--animation",
            "none",
        )
        == 0
    )
    assert (out / "run-001" / "m1" / "manifest.json").exists()
    assert (out / "run-002" / "m1" / "reconstruction.mp4").exists()
    # --animation none keeps still keyframes even with the animation models present.
    second = json.loads((out / "run-002" / "m1" / "manifest.json").read_text())
    assert second["animation"] is None and "timings_s" in second
    assert "animation" not in second["timings_s"]
    with h5py.File(session, "r") as f:
        assert sorted(f["derived/generation"]) == ["run-001", "run-002"]


def test_generate_bad_input_is_one_line_and_nonzero(tiny_models, tmp_path, capsys):
    no_keys = write_session(tmp_path / "nokeys.h5", recall=6.0, presses=False)
    assert _generate(no_keys, tiny_models, tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert "no valence" in err and len(err.splitlines()) == 1
    assert _generate(no_keys, tiny_models, tmp_path / "o", "--affect", "decoded") == 2
    assert "recall-lab decode" in capsys.readouterr().err
    assert _generate(no_keys, tiny_models, tmp_path / "o", "--memory", "nope") == 2
    assert "m1" in capsys.readouterr().err
    assert _generate(no_keys, tmp_path / "nomodels", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "stable-diffusion" in err and "hf download" in err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a session")
    assert _generate(junk, tiny_models, tmp_path / "o") != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with h5py.File(no_keys, "r") as f:
        assert "derived" not in f or "generation" not in f["derived"]


def test_decoded_affect_reads_newest_decoding_run(tmp_path):
    from data_schema.derived import new_derived_run
    from data_schema.reader import read_session
    from generation.affect import affect_trajectory

    session = write_session(tmp_path / "d.h5", recall=10.0, presses=False)
    for value in (-0.9, 0.8):  # run-002 is the newest
        with new_derived_run(session, "decoding", {}) as g:
            t = 1000.0 + np.arange(0, 14, 0.5)
            g.create_dataset("trajectory/times", data=t)
            g.create_dataset("trajectory/valence", data=np.full(len(t), value, np.float32))
    traj = affect_trajectory(read_session(session), "m1", "decoded")
    assert traj.source.endswith("run-002")
    assert traj.times[0] == pytest.approx(1001.0) and traj.times[-1] < 1011.0
    assert np.allclose(traj.valence, 0.8)


def test_long_music_is_generated_in_overlapping_windows(tiny_models):
    from test_generation_helpers import hum

    from generation.models import pick_device
    from generation.music import MusicGenerator, MusicSettings

    gen = MusicGenerator(tiny_models / "musicgen-melody", pick_device("cpu"))
    settings = MusicSettings(window=0.8, overlap=0.3)
    audio, plan = gen.generate(
        "a calm tune", 1.8, melody=hum(), melody_rate=16000, seed=0, settings=settings
    )
    assert len(audio) == round(1.8 * 32000)
    assert len(plan) >= 3
    assert plan[0]["continued"] is False and all(w["continued"] for w in plan[1:])
    # Windows tile the timeline: each starts where the audio so far ends.
    assert [w["start"] for w in plan[1:]] == pytest.approx(
        np.cumsum([w["seconds"] for w in plan[:-1]]).tolist()
    )
    assert all(w["seconds"] <= 0.8 - 0.3 + 1e-6 for w in plan[1:])
    assert np.all(np.isfinite(audio))


def test_cancel_stops_and_records_nothing(tiny_models, tmp_path):
    import threading

    from generation.models import pick_device
    from generation.music import GenerationCancelled, MusicGenerator, MusicSettings
    from generation.pipeline import GenerateConfig, run_generation

    cancel = threading.Event()
    cancel.set()
    session = write_session(tmp_path / "c.h5", recall=6.0)
    cfg = GenerateConfig(models=tiny_models, out=tmp_path / "o", show_progress=False)
    with pytest.raises(GenerationCancelled):
        run_generation(session, cfg, cancel=cancel)
    with h5py.File(session, "r") as f:
        assert "derived" not in f or "generation" not in f["derived"]
    # Cancelling in the middle of a window stops within a token.
    cancel = threading.Event()

    class CancelAfter:
        steps = 0

        def update(self, n):
            self.steps += n
            if self.steps == 10:
                cancel.set()

    bar = CancelAfter()
    gen = MusicGenerator(tiny_models / "musicgen-melody", pick_device("cpu"), cancel)
    with pytest.raises(GenerationCancelled):
        gen.generate(
            "x", 5.0, melody=None, melody_rate=None, seed=0, settings=MusicSettings(), progress=bar
        )
    assert bar.steps <= 11


def test_the_control_is_made_with_crossfaded_music_too(tiny_models, tmp_path):
    # The control's order was only known to the continuation chain: with crossfaded music
    # (no chains) generating the control failed on its order.
    session = write_session(tmp_path / "s.h5", recall=15.0)
    out = tmp_path / "gen"
    args = ["--duration", "4", "--control", "--min-segment", "2", "--music-join", "crossfade"]
    assert _generate(session, tiny_models, out, *args, "--transition-mode", "crossfade") == 0
    folder = out / "run-001" / "m1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["control"]["video"] == "control_reordered.mp4"
    assert (folder / "control_reordered.mp4").stat().st_size > 0
    assert manifest["models"]["musicgen-melody"]["backend"] == "transformers"
