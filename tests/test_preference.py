"""The participant's verdict: a ``preference`` phase shows a memory's reconstruction and its
reordered control blind (counterbalanced, neutral names), collects ratings, continuous valence
while watching and a choice, and the analysis summarises them (``generation.preference``)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import pytest

from protocols.engine import ProtocolEngine
from protocols.loader import parse_protocol
from protocols.reconstructions import Reconstruction, ShownVideo
from protocols.steps import preference_order

pytestmark = [
    # as in tests/test_generation_pipeline.py: diffusers' notices about its own internals
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

PROTOCOL = """
version: 1
name: verdict
valence: {positive_key: "1", negative_key: "3"}
memories: [{id: m1, cue: A summer by the lake}, {id: m2, cue: A goodbye}]
phases:
  - id: each
    kind: repeat
    phases:
      - id: judge
        kind: preference
        scales:
          - {id: match, text: "How well did it match your memory?", min: 1, max: 7}
          - {id: liked, text: "How much did you like it?", min: 1, max: 5}
"""


def _reconstructions(tmp_path: Path, memories=("m1", "m2")) -> dict[str, Reconstruction]:
    out = {}
    for m in memories:
        videos = {}
        for shows, segs in (
            ("reconstruction", ((0.0, 2.0, 0.8), (2.0, 4.0, -0.6))),
            ("control", ((0.0, 2.0, -0.6), (2.0, 4.0, 0.8))),
        ):
            path = tmp_path / f"{m}-{shows}.mp4"
            path.write_bytes(b"not decoded by the engine")
            videos[shows] = ShownVideo(shows, path, None, 4.0, segs)
        out[m] = Reconstruction(m, tmp_path / "source.h5", "run-001", videos)
    return out


def test_the_videos_are_counterbalanced_across_participants_and_memories():
    phase = parse_protocol(PROTOCOL).phases[0].phases[0]
    first = [preference_order(phase, 0, f"P{i:03d}")[0] for i in range(60)]
    share = first.count("reconstruction") / len(first)
    assert 0.35 <= share <= 0.65, share
    for i in range(20):  # within a participant, the memories alternate
        a, b = (preference_order(phase, k, f"P{i:03d}") for k in (0, 1))
        assert a == b[::-1] and set(a) == {"reconstruction", "control"}
    # seeded: the same participant always gets the same order
    assert preference_order(phase, 0, "P007") == preference_order(phase, 0, "P007")


def test_a_preference_phase_runs_blind_and_records_everything(tmp_path):
    events, samples = [], []
    engine = ProtocolEngine(
        parse_protocol(PROTOCOL),
        emit=events.append,
        valence_samples=lambda v, t: samples.append((v, t)),
        participant_id="P042",
        reconstructions=_reconstructions(tmp_path),
    )
    kinds = [s.kind for s in engine.steps]
    assert kinds == [
        *["preference_video", "preference_rating"] * 2,
        "preference_choice",
        *["preference_video", "preference_rating"] * 2,
        "preference_choice",
    ]
    order = preference_order(engine.protocol.phases[0].phases[0], 0, "P042")
    engine.start(0.0)
    d = engine.display()
    assert d.kind == "preference_video" and d.video_label == "A"
    assert d.expects == "valence_keys" and d.remaining == pytest.approx(4.0)
    assert d.video.shows == order[0]  # the display knows, to play it; it shows only "A"
    engine.video_started(0.1, output_latency=0.02)
    engine.key_down("1", 0.5)  # continuous valence while watching
    engine.key_up("1", 1.0)
    engine.tick(4.05)
    assert engine.display().kind == "preference_video"  # the video started 0.1 s late
    engine.tick(4.1)
    d = engine.display()
    assert d.kind == "preference_rating" and d.ratings_pending == ("match", "liked")
    with pytest.raises(ValueError, match="from 1 to 5"):
        engine.rate_video("liked", 7, 4.5)
    engine.rate_video("match", 6, 5.0)
    engine.rate_video("liked", 4, 5.5)
    assert engine.display().kind == "preference_video" and engine.display().video_label == "B"
    engine.video_started(5.6)
    engine.tick(9.6)
    engine.rate_video("match", 2, 10.0)
    engine.rate_video("liked", 2, 10.5)
    d = engine.display()
    assert d.kind == "preference_choice" and d.expects == "choice" and d.video is None
    engine.choose_video("A", 11.0)
    assert engine.display().memory_id == "m2"

    by = lambda label: [json.loads(e.value) for e in events if e.label == label]  # noqa: E731
    starts = by("video_start")
    assert [(v["video"], v["shows"]) for v in starts] == [("A", order[0]), ("B", order[1])]
    assert starts[0]["output_latency"] == 0.02 and starts[0]["seconds"] == 4.0
    shown = tmp_path / f"m1-{order[0]}.mp4"
    assert starts[0]["sha256"] == hashlib.sha256(shown.read_bytes()).hexdigest()
    ends = by("video_end")
    assert [v["played"] for v in ends] == pytest.approx([4.0, 4.0])
    ratings = by("preference_rating")
    assert [(r["video"], r["scale"], r["value"]) for r in ratings] == [
        ("A", "match", 6),
        ("A", "liked", 4),
        ("B", "match", 2),
        ("B", "liked", 2),
    ]
    assert by("preference_choice") == [{"memory": "m1", "chose": "A", "block": "judge"}]
    # the cursor moved up while "1" was held, sampled into the valence stream
    assert [
        json.loads(e.value) if e.value.startswith("{") else float(e.value)
        for e in events
        if e.label == "valence_rating"
    ] == [pytest.approx(0.5)]
    assert samples and max(max(v) for v, _ in samples) == pytest.approx(0.5, abs=0.06)
    # what the participant is told never says which video is the reconstruction
    markers = [json.loads(e.value) for e in events if e.label == "phase_start"]
    assert all("reconstruction" not in (m.get("text") or "") for m in markers)


def test_a_time_scaled_run_scales_the_rating_limit_but_not_the_videos(tmp_path):
    # recall-lab demo --time-scale 0.25: the ratings and the choice get a quarter of their time;
    # a video still plays for its own length.
    text = PROTOCOL.replace("kind: preference\n", "kind: preference\n        rating_seconds: 20\n")
    protocol = parse_protocol(text).scaled(0.25)
    engine = ProtocolEngine(
        protocol,
        emit=lambda e: None,
        participant_id="P042",
        reconstructions=_reconstructions(tmp_path),
    )
    limits = {s.kind: s.phase.max_duration for s in engine.steps}
    assert limits["preference_rating"] == limits["preference_choice"] == pytest.approx(5.0)
    engine.start(0.0)
    assert engine.display().remaining == pytest.approx(4.0)  # the video's 4 s


def test_a_memory_without_a_reconstruction_is_one_clear_line(tmp_path):
    from data_schema.errors import RecallLabError

    with pytest.raises(RecallLabError, match="no reconstruction of memory 'm2'"):
        ProtocolEngine(
            parse_protocol(PROTOCOL), reconstructions=_reconstructions(tmp_path, ("m1",))
        )


PREFERENCE_DEMO = """
version: 1
name: verdict-demo
memories: [{id: m1, cue: A summer by the lake}]
phases:
  - id: judge
    kind: preference
    memory: m1
"""


@pytest.fixture
def generated(reconstructed_session):
    return reconstructed_session


@pytest.mark.timeout(600)
def test_a_demo_session_judges_the_reconstruction_and_the_study_summary_says_so(
    generated, judged_sessions, tmp_path, capsys
):
    from app.cli import main
    from data_schema.reader import read_session

    judged = [Path(shutil.copy(f, tmp_path / f.name)) for f in judged_sessions]
    s = read_session(judged[0])
    assert s.attrs["preference_source"] == str(generated.resolve())
    shown = [json.loads(e.value) for e in s.events_where(source="stimulus", label="video_start")]
    assert sorted(v["shows"] for v in shown) == ["control", "reconstruction"]
    assert [v["video"] for v in shown] == ["A", "B"]
    assert "valence" in s.streams and s.streams["valence"].n_samples > 0

    capsys.readouterr()
    assert main(["preference", *map(str, judged), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    summary = report["summary"]
    assert summary["judgements"] == 2
    assert 0 <= summary["chose_reconstruction"] <= 2
    assert 0 <= summary["binomial_p"] <= 1
    # The simulated participant's cursor follows what each video shows: its rating
    # correlates with the valence the video was made to carry.
    corr = summary["correlation_reconstruction"]
    assert corr["participants"] == 2 and corr["mean_r"] > 0.5
    assert corr["ci95"][0] <= corr["mean_r"] <= corr["ci95"][1]
    # stored in each judging session
    with h5py.File(judged[0]) as f:
        runs = list(f["derived"]["study"])
        assert runs == ["run-001"]
        assert f["derived"]["study"]["run-001"].attrs["analysis"] == "preference"
    # bad input: a session without any judgement is one line, nothing written
    assert main(["preference", str(generated)]) == 2
    assert "holds no preference judgement" in capsys.readouterr().err


def test_a_missing_reconstruction_stops_the_demo_before_any_file(tmp_path, capsys):
    from test_generation_helpers import write_session

    from app.cli import main

    proto = tmp_path / "verdict.yaml"
    proto.write_text(PREFERENCE_DEMO)
    plain = write_session(tmp_path / "plain.h5")  # never generated
    out = tmp_path / "judged.h5"
    args = ["demo", "--protocol", str(proto), "--out", str(out), "--no-offline", "--quiet"]
    assert main([*args, "--reconstructions", str(plain)]) == 2
    assert "has no reconstructions" in capsys.readouterr().err
    assert main(args) == 2  # no --reconstructions at all
    assert "no reconstruction of memory 'm1'" in capsys.readouterr().err
    assert not out.exists()
