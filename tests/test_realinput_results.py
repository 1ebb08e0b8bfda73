"""Offline results inside the console, under real use: open an earlier session, decode and
generate with progress a person can follow, cancel without leftovers, and look at the results
(the valence plot, pictures, the video with its affect timeline) without leaving the app.

The real app on Xvfb under openbox, driven through XTEST and xdotool (``tests/realinput``); the
stages run as the app runs them, ``recall-lab decode|generate`` in their own process.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from realinput.sound import playback_home
from test_generation_helpers import write_session

from app.cli import main
from decoding.simulate import SimulationSettings, simulate_session

pytestmark = [pytest.mark.gui, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("results")
    return simulate_session(
        d / "sim.h5",
        SimulationSettings(
            effect=1.0, seed=5, duration=120.0, n_channels=8, sfreq=250.0, recall=30.0
        ),
    )


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "models"
    assert main(["models", "make-tiny", str(d)]) == 0
    return d


def start(real_app, tmp_path: Path, env: dict[str, str] | None = None, **settings: str):
    """The app with these console settings (``offline/...``) already stored."""
    workdir = tmp_path / "app0"
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["[offline]"] + [f"{k}={v}" for k, v in settings.items()]
    (workdir / "settings.ini").write_text("\n".join(lines) + "\n")
    return real_app(participant=None, protocol="none", env=env)


def open_session(app, path: Path) -> None:
    """Open ``path`` through *Open session…* and the file dialog, typing its path."""
    app.click("Open session")
    modal = app.wait_until(lambda: app.state()["modal"], 5, what="the file dialog")
    assert modal["title"] == "Open session"
    app.type_text(str(path))
    app.press("Return")
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the dialog closed")
    app.wait_until(lambda: app.text("Offline session") == path.name, 5, what="session chosen")


def follow_job(app, timeout: float) -> list[tuple[str, str]]:
    """What a person sees on the two progress lines until the job ends."""
    seen: list[tuple[str, str]] = []
    app.wait_until(lambda: app.state()["job_running"], 10, what="the job started")
    end = time.monotonic() + timeout
    while app.state()["job_running"]:
        assert time.monotonic() < end, f"still running after {timeout} s: {seen[-3:]}"
        now = (app.text("Offline progress"), app.text("Offline step"))
        if not seen or seen[-1] != now:
            seen.append(now)
        time.sleep(0.05)
    return seen


def decode_config(tmp_path: Path, iterations: int, permutations: int) -> Path:
    cfg = tmp_path / "decode.yaml"
    cfg.write_text(
        "decoders: [bandpower_logreg, cebra_behavior_knn]\n"
        f"cebra:\n  max_iterations: {iterations}\n  consistency_runs: 0\n"
        f"evaluation:\n  n_permutations: {permutations}\n  n_permutations_refit: 1\n"
    )
    return cfg


def test_decode_an_opened_session_then_look_at_its_results(real_app, sim, tmp_path):
    session = tmp_path / "sim.h5"
    session.write_bytes(sim.read_bytes())
    app = start(real_app, tmp_path, decode_config=decode_config(tmp_path, 200, 4))
    open_session(app, session)
    assert app.find("Valence plot")["enabled"] is False  # nothing decoded yet

    app.click("Decode affect")
    seen = follow_job(app, 180)
    # The bar says which step of how many runs, and the step line counts its fits.
    assert any(re.match(r"\d+% · step 3 of 4", bar or "") for bar, _ in seen), seen
    fits = [
        m
        for _, step in seen
        if (m := re.match(r"cebra_behavior_knn: (\d+) of 11 fits", step or ""))
    ]
    assert fits and any(0 < int(m.group(1)) < 11 for m in fits), seen
    assert "finished" in app.text("Offline status")
    assert app.text("Offline progress") == "100% · done"

    listed = app.text("Results").splitlines()
    report = session.parent / "sim.h5.decoding" / "run-001"
    # Every file of the report, by its name from the session's folder.
    assert sorted(listed) == sorted(
        str(p.relative_to(session.parent)) for p in report.rglob("*") if p.is_file()
    )
    assert "sim.h5.decoding/run-001/trajectory.png" in listed

    app.double_click_item("Results", "sim.h5.decoding/run-001/trajectory.png")
    app.wait_until(
        lambda: any(w["title"] == "sim.h5.decoding/run-001/trajectory.png" for w in app.windows()),
        10,
        what="the picture's window",
    )
    app.double_click_item("Results", "sim.h5.decoding/run-001/metrics.json")
    app.wait_until(lambda: "f1_weighted" in (app.text("File text") or ""), 10, what="the JSON")

    app.click("Valence plot")
    summary = app.wait_until(
        lambda: (t := app.text("Valence summary")) and not t.startswith("reading") and t,
        20,
        what="the valence plot",
    )
    # The primary decoder (the first configured) with its honest figure and chance level.
    assert summary.startswith("bandpower_logreg · /derived/decoding/run-001 · weighted F1")
    assert "chance" in summary and "out of fold" in summary


def test_cancel_keeps_nothing_and_the_session_can_be_decoded_again(real_app, sim, tmp_path):
    session = tmp_path / "sim.h5"
    session.write_bytes(sim.read_bytes())
    before = session.read_bytes()
    app = start(real_app, tmp_path, decode_config=decode_config(tmp_path, 5000, 50))
    open_session(app, session)
    app.click("Decode affect")
    app.wait_until(
        lambda: (app.text("Offline step") or "").startswith("cebra_behavior_knn"),
        120,
        what="the CEBRA step",
    )
    app.click("Cancel")
    app.wait_until(lambda: not app.state()["job_running"], 15, what="the job stopped")
    assert app.text("Offline status") == "recall-lab decode cancelled: nothing of it was kept"
    assert app.text("Offline progress") == "0%"
    assert not (session.parent / "sim.h5.decoding").exists()
    assert session.read_bytes() == before
    assert app.find("Decode affect")["enabled"]
    assert app.text("Results") == ""


def test_generate_then_review_the_video_with_its_timeline_prompts_sketch_and_melody(
    real_app, tiny_models, tmp_path
):
    session = write_session(tmp_path / "mem.h5", recall=6.0)
    home = tmp_path / "home"
    played = playback_home(home, 16000)
    app = start(real_app, tmp_path, env={"HOME": str(home)}, models_dir=str(tiny_models))
    open_session(app, session)
    app.wait_until(
        lambda: "stable-diffusion" in (app.text("Models found") or ""), 10, what="models"
    )
    app.click("Generate media")
    seen = follow_job(app, 240)
    steps = {(step or "").split(":")[0] for _, step in seen}
    assert {"keyframes", "music", "video"} <= steps, seen
    assert "finished" in app.text("Offline status"), app.text("Offline status")
    listed = app.text("Results").splitlines()
    run = session.parent / "mem-generation" / "run-001"
    assert sorted(listed) == sorted(
        str(p.relative_to(session.parent)) for p in run.rglob("*") if p.is_file()
    )
    video = next(name for name in listed if name.endswith("/reconstruction.mp4"))

    app.double_click_item("Results", video)
    app.wait_until(lambda: any(video in w["title"] for w in app.windows()), 10, what="player")
    about = app.wait_until(
        lambda: (t := app.text("Timeline source")) and "segments" in t and t, 10, what="timeline"
    )
    assert re.match(r"\d+ segments from the reported affect", about), about
    app.click("Play or pause", window=video)
    app.wait_until(
        lambda: not (app.text("Playback position") or "").startswith("0:00.0"),
        10,
        what="the video playing",
    )
    # A click near the right end of the timeline seeks there.
    app.click("Play or pause", window=video)  # pause
    duration = app.text("Playback position").split(" / ")[1]
    total = float(duration.split(":")[0]) * 60 + float(duration.split(":")[1])
    box = app.find("Affect timeline", window=video)["rect"]
    app.click_at(box[0] + int(box[2] * 0.9), box[1] + box[3] // 2)
    app.wait_until(
        lambda: _seconds(app.text("Playback position")) > 0.6 * total, 5, what="the seek"
    )

    # The review beside the video: each segment's prompts, the sketch and the melody.
    manifest = json.loads((run / "m1" / "manifest.json").read_text())
    segments = manifest["segments"]
    prompts = app.text("Segment prompts", window=video).split("\n")
    for s in segments:
        assert f"image: {s['prompt_image']}" in prompts
        assert f"music: {s['prompt_music']}" in prompts
    source = app.text("Review source", window=video)
    assert source.startswith("memory m1 of mem.h5") and "sketch" in source, source
    assert "no sketch" not in source and "melody 6.0 s" in source, source
    # a click on the first segment goes back to its start
    app.click("Segment prompts", window=video)
    first = app.find("Segment prompts", window=video)["rect"]
    app.click_at(first[0] + 40, first[1] + 12)
    app.wait_until(
        lambda: _seconds(app.text("Playback position")) < 0.1 * total, 5, what="back to 0"
    )
    # the participant's melody plays on the sound device
    before = played.stat().st_size if played.exists() else 0
    app.click("Play melody", window=video)
    app.wait_until(
        lambda: played.exists() and played.stat().st_size - before >= 2 * 16000 * 6.0 * 0.9,
        15,
        what="the melody played",
    )


def _seconds(position: str | None) -> float:
    now = (position or "0:0").split(" / ")[0]
    minutes, seconds = now.split(":")
    return float(minutes) * 60 + float(seconds)


def test_cancelling_generate_leaves_no_run_folder_and_resets_the_bars(
    real_app, tiny_models, tmp_path
):
    session = write_session(tmp_path / "mem.h5", recall=6.0)
    before = session.read_bytes()
    app = start(real_app, tmp_path, models_dir=str(tiny_models))
    open_session(app, session)
    app.click("Generate media")
    app.wait_until(
        lambda: (app.text("Offline step") or "").startswith("music"), 120, what="the music step"
    )
    assert (session.parent / "mem-generation").is_dir()  # the run is being written
    app.click("Cancel")
    app.wait_until(lambda: not app.state()["job_running"], 30, what="the job stopped")
    assert app.text("Offline status") == "recall-lab generate cancelled: nothing of it was kept"
    assert app.text("Offline progress") == "0%" and app.text("Offline step") == ""
    assert not (session.parent / "mem-generation").exists()
    assert session.read_bytes() == before
    assert app.text("Results") == ""


def _small_study(tmp_path: Path) -> Path:
    short = {"duration": 60.0, "n_channels": 4, "sfreq": 125.0, "recall": 20.0, "baseline": 10.0}
    files = [
        simulate_session(
            tmp_path / f"p{i}.h5",
            SimulationSettings(seed=i, participant_id=f"P0{i}", effect=1.0, **short),
        )
        for i in range(2)
    ]
    root = tmp_path / "pilot"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), *map(str, files)]) == 0
    return root


def open_study(app, root: Path) -> None:
    """Open the study folder through *Open study…* and the folder dialog, typing its path."""
    app.click("Open study")
    modal = app.wait_until(lambda: app.state()["modal"], 5, what="the folder dialog")
    assert modal["title"] == "Open study"
    app.type_text(str(root))
    app.press("Return")
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the dialog closed")
    app.wait_until(lambda: app.text("Offline study") == "pilot", 10, what="study chosen")


def test_decode_a_whole_study_from_the_console(real_app, tmp_path):
    root = _small_study(tmp_path)
    cfg = tmp_path / "study.yaml"
    cfg.write_text("decoders: [bandpower_logreg]\nevaluation:\n  n_permutations: 5\n")
    app = start(real_app, tmp_path, decode_config=str(cfg))
    assert app.find("Decode study")["enabled"] is False  # no study yet
    open_study(app, root)
    app.click("Decode study")
    seen = follow_job(app, 240)
    # The step line counts participants as their tasks come back from the Dask workers.
    counts = [m for _, step in seen if (m := re.match(r"participants: (\d) of 2", step or ""))]
    assert counts, seen
    assert app.text("Offline status").startswith("recall-lab study decode finished")
    listed = app.text("Results").splitlines()
    assert "derivatives/decoding/runs/run-001/summary.json" in listed


def test_cancel_a_study_decode_from_the_console(real_app, tmp_path):
    root = _small_study(tmp_path)
    app = start(real_app, tmp_path, decode_config=decode_config(tmp_path, 5000, 50))
    open_study(app, root)
    app.click("Decode study")
    app.wait_until(
        lambda: (app.text("Offline step") or "").startswith("participants: 0 of 2"),
        60,
        what="the participants step",
    )
    app.click("Cancel")
    app.wait_until(lambda: not app.state()["job_running"], 30, what="the job stopped")
    assert app.text("Offline status") == "recall-lab study decode cancelled: nothing of it was kept"
    assert not (root / "derivatives" / "decoding" / "runs").exists()
    assert app.find("Decode study")["enabled"]
