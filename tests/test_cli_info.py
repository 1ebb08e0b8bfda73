"""``recall-lab info``: what a file holds, from its timestamps alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from data_schema.derived import new_derived_run
from data_schema.summary import summarize_session
from data_schema.types import Event, StreamInfo
from data_schema.writer import STROKE_DTYPE, SessionWriter

REPO = Path(__file__).resolve().parents[1]


def _session(path: Path) -> Path:
    w = SessionWriter(path, participant_id="P123", protocol="rym-1.0")
    info = StreamInfo("eeg", ["Fz", "Cz", "HEOG"], ["eeg", "eeg", "eog"], ["uV"] * 3, 500)
    w.add_stream("eeg", info)
    ts = 100 + np.arange(5000) / 500.0
    ts[3000:] += 2.0  # the amplifier dropped out for 2 s
    w.append("eeg", np.zeros((5000, 3)), ts)
    w.add_events(
        [Event(101 + i, "keyboard", "key_down", '{"key": "1"}') for i in range(3)]
        + [Event(102, "protocol", "phase_start", '{"phase": "r1"}')]
    )
    w.set_description("m1", "a walk by the sea", 103.0)
    w.add_sketch_points("m1", np.zeros(42, STROKE_DTYPE))
    w.append_melody("m1", np.zeros(44100 * 3), sample_rate=44100, origin="microphone")
    w.memory_group("m2", cue="a school day")
    w.close()
    for _ in range(2):
        with new_derived_run(path, "decoding", {}):
            pass
    return path


def test_info_json_summarises_streams_events_memories_and_runs(tmp_path):
    path = _session(tmp_path / "s.h5")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "info", "--json", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["participant_id"], s["protocol"], s["clean_close"]) == ("P123", "rym-1.0", True)
    assert s["file_bytes"] == path.stat().st_size
    (eeg,) = s["streams"]
    assert eeg["channels"] == 3 and eeg["channel_types"] == {"eeg": 2, "eog": 1}
    assert eeg["samples"] == 5000 and eeg["nominal_rate"] == 500
    assert eeg["gaps"] == 1 and abs(eeg["gap_seconds"] - 2.002) < 1e-6
    assert abs(eeg["duration_s"] - (4999 / 500 + 2)) < 1e-6
    # Measured outside the gap, as `recall-lab validate` measures it (issue 9, item 11).
    assert abs(eeg["measured_rate"] - 500) < 1e-6
    assert s["events"] == 4
    assert s["events_by_kind"] == {"keyboard/key_down": 3, "protocol/phase_start": 1}
    m1, m2 = s["memories"]
    assert m1["description_chars"] == len("a walk by the sea")
    assert m1["sketch_points"] == 42 and abs(m1["melody_seconds"] - 3.0) < 1e-9
    assert m2["description_chars"] is None and m2["attrs"]["cue"] == "a school day"
    assert s["derived"] == {"decoding": ["run-001", "run-002"]}


def test_info_text_reads_at_a_glance(tmp_path):
    path = _session(tmp_path / "s.h5")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "info", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "participant   P123" in out and "clean close   yes" in out
    assert "3 ch (eeg x2, eog x1; uV), 500 Hz nominal" in out
    assert "1 gap(s) totalling 2.00 s" in out
    assert "m1         description 17 chars, sketch 42 points, melody 3.0 s" in out
    assert "decoding   run-001, run-002" in out


def test_summary_does_not_load_samples(tmp_path, monkeypatch):
    """info must stay quick on long files: it reads timestamps, never the sample matrix."""
    import h5py

    path = _session(tmp_path / "s.h5")
    reads: list[str] = []
    original = h5py.Dataset.__getitem__

    def recording_getitem(self, *args, **kwargs):
        reads.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording_getitem)
    summarize_session(path)
    assert "/streams/eeg/timestamps" in reads
    assert "/streams/eeg/data" not in reads
    assert "/memories/m1/melody/audio" not in reads
