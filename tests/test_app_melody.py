"""Humming from the microphone reaches the session file, through a real ALSA capture device.

There is no sound card here, so the test gives PortAudio an ALSA ``file`` PCM whose capture
side reads a known 220 Hz tone (a temporary ``~/.asoundrc`` in a temporary HOME, in a child
process, because PortAudio reads the ALSA configuration once per process). The child runs the
participant display's melody panel, the protocol runner and engine, and the session
controller recording the synthetic board, exactly as the app does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

RATE = 16000
TONE_HZ = 220.0

ASOUNDRC = """
pcm.!default {{
    type asym
    playback.pcm "nullout"
    capture.pcm "hum"
}}
pcm.nullout {{ type null }}
pcm.hum {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{infile}"
            format "raw"
        }}
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
"""

PROTOCOL = """
version: 1
name: hum-test
memories:
  - id: m1
    cue: A walk by the sea
phases:
  - id: per_memory
    kind: repeat
    phases:
      - id: melody
        kind: melody
        text: Hum the melody.
        record_seconds: 1
"""

CHILD = """
import sys, time
from PyQt6 import QtWidgets
app = QtWidgets.QApplication(["test"])
from app.participant import ParticipantWindow
from app.protocol_runner import ProtocolRunner
from app.session_controller import SessionController
from protocols.loader import load_protocol

out, protocol = sys.argv[1], sys.argv[2]

def spin(seconds, until=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.005)

c = SessionController(marker_outlet=False)
c.connect("synthetic")
c.start_recording(out, participant="P001", protocol="hum-test")
p = ParticipantWindow()
r = ProtocolRunner(load_protocol(protocol), c, p)
r.start()
spin(5, lambda: p.kind == "melody")
p.melody.record_button.click()
spin(1.5)
p.melody_done.click()
spin(5, lambda: r.engine.done)
r.close()
c.stop_recording()
c.disconnect()
print("state", r.engine.state, "|", p.melody.info.text())
"""


def test_humming_is_recorded_into_the_file(tmp_path):
    from data_schema.reader import read_session

    home = tmp_path / "home"
    home.mkdir()
    infile = home / "hum.raw"
    t = np.arange(RATE * 10) / RATE
    (0.3 * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2").tofile(infile)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=infile, rate=RATE))
    protocol = tmp_path / "hum.yaml"
    protocol.write_text(PROTOCOL)
    out = tmp_path / "hum.h5"
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(out), str(protocol)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "state finished | humming stored" in r.stdout, r.stdout + r.stderr[-2000:]

    s = read_session(out)
    m = s.memories["m1"]
    assert m.melody_attrs["origin"] == "microphone"
    assert m.melody_rate == RATE
    audio = m.melody[:, 0]
    # The test device is not paced like a real microphone: the protocol's record_seconds (1 s)
    # is what stops the recording, to the sample.
    assert len(audio) == RATE
    assert np.max(np.abs(audio)) == pytest.approx(0.3, abs=0.01)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    peak = np.fft.rfftfreq(len(audio), 1 / RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(TONE_HZ, abs=2.0)
    ends = s.events_where(source="participant", label="melody_submitted")
    assert ends and '"origin":"microphone"' in ends[0].value
