"""The participant's verdict in the app: the reconstruction and its reordered control play on
the participant display with their sound, blind (only "Video A" / "Video B"), the participant
rates valence with the keys while watching, clicks the ratings and the choice.

The app runs on Xvfb under openbox (``tests/realinput``); keys go through XTEST, clicks through
xdotool. The sound goes to an ALSA ``file`` PCM (a temporary ``~/.asoundrc``) that appends what
it is given to a raw file. The reconstructions come from ``recall-lab generate --control`` with
tiny random models (``tests/conftest.py``: ``reconstructed_session``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from realinput.recorded import closed_session
from realinput.sound import playback_home

pytestmark = [
    pytest.mark.gui,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

PROTOCOL = """\
version: 1
name: verdict-rig
valence: {positive_key: "1", negative_key: "3"}
memories: [{id: m1, cue: A summer by the lake}]
phases:
  - id: judge
    kind: preference
    memory: m1
    scales:
      - {id: match, text: "How well did it match your memory?", min: 1, max: 7}
"""


def test_the_participant_judges_both_videos_blind_in_the_app(
    real_app,
    reconstructed_session,
    tmp_path,
):
    home = tmp_path / "home"
    played = playback_home(home, 32000)
    proto = tmp_path / "verdict.yaml"
    proto.write_text(PROTOCOL)
    app = real_app(
        protocol=str(proto),
        time_scale=1.0,
        extra_args=("--reconstructions", str(reconstructed_session)),
        env={"HOME": str(home)},
    )
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    shown_titles = []
    for label in ("A", "B"):
        app.wait_until(
            lambda: (app.state()["engine"] or {}).get("kind") == "preference_video",
            20,
            what=f"video {label}",
        )
        title = app.text("participant display title", window="participant display")
        shown_titles.append(title)
        app.click_window("participant display")
        app.press("1", hold=1.0)  # the cursor up while it plays
        app.wait_phase("preference_rating", timeout=20)
        app.click("match 6" if label == "A" else "match 2", window="participant display")
    app.wait_phase("preference_choice", timeout=20)
    app.click("Video A", window="participant display")
    app.wait_until(lambda: app.state()["engine"]["done"], 20, what="the protocol's end")
    s = closed_session(app.stop_recording_and_wait())

    # blind: the participant saw "Video A" and "Video B", never what they were
    assert shown_titles == ["Video A", "Video B"], shown_titles
    assert s.attrs["preference_source"] == str(reconstructed_session.resolve())
    starts = [json.loads(e.value) for e in s.events_where(source="stimulus", label="video_start")]
    assert [v["video"] for v in starts] == ["A", "B"]
    assert sorted(v["shows"] for v in starts) == ["control", "reconstruction"]
    assert all(v["output_latency"] is not None for v in starts)  # timed by the sound device
    assert not s.events_where(source="stimulus", label="video_error")
    ratings = [json.loads(e.value) for e in s.events_where(label="preference_rating")]
    assert [(r["video"], r["value"]) for r in ratings] == [("A", 6), ("B", 2)]
    (choice,) = [json.loads(e.value) for e in s.events_where(label="preference_choice")]
    assert choice["chose"] == "A"
    # each video played to its end, and the valence keys moved the cursor while it did
    ends = [json.loads(e.value) for e in s.events_where(source="stimulus", label="video_end")]
    assert [e["played"] for e in ends] == pytest.approx([6.0, 6.0], abs=0.05)
    v = s.streams["valence"]
    assert v.data[:, 0].max() > 0.5
    # the sound of both videos reached the device
    audio = np.fromfile(played, dtype="<i2")
    assert len(audio) >= 2 * 6.0 * 32000 * 0.9
