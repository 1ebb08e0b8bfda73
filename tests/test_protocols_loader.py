"""Protocol files: the shipped ones load; malformed ones give file:line: field messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.cli import main
from data_schema.errors import ConfigError
from protocols import builtin_protocol_path, expand_protocol, load_protocol
from protocols.loader import resolve_protocol

GOOD = """\
version: 1
name: t
memories:
  - {id: m1, cue: a walk by the sea}
phases:
  - id: base
    kind: baseline
    duration: 5
  - id: each
    kind: repeat
    phases:
      - id: rec
        kind: recall
        duration: 10
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path) + ":")
    return msg


@pytest.mark.parametrize("name", ["demo", "rym_recall"])
def test_shipped_protocols_load_and_follow_rym(name):
    protocol = load_protocol(builtin_protocol_path(name))
    steps = expand_protocol(protocol)
    kinds = [s.kind for s in steps]
    assert kinds[:2] == ["instructions", "baseline"]
    per_memory = ["cue", "recall", "description", "sketch", "melody", "sam"]
    for i, mem in enumerate(protocol.memories):
        got = [s.kind for s in steps if s.memory_id == mem.id]
        assert got == per_memory, f"memory {i}"
    assert protocol.valence.mode == "discrete"
    assert (protocol.valence.positive_key, protocol.valence.negative_key) == ("1", "3")


def test_demo_protocol_is_about_two_minutes():
    protocol = load_protocol(builtin_protocol_path("demo"))
    # fixed phases plus the limits of the open ones bound the length from above
    fixed = sum(s.phase.duration or 0 for s in expand_protocol(protocol))
    bounded = sum(
        (s.phase.duration or s.phase.max_duration or 0) for s in expand_protocol(protocol)
    )
    assert 60 <= fixed <= 150
    assert bounded <= 240


def test_resolve_protocol_by_name_or_path(tmp_path):
    assert resolve_protocol("demo") == builtin_protocol_path("demo")
    path = write(tmp_path, GOOD)
    assert resolve_protocol(path) == path
    with pytest.raises(ConfigError, match="built-in protocols: demo, rym_recall"):
        resolve_protocol("nonesuch")


def test_bad_indentation_names_the_line(tmp_path):
    msg = load_error(
        tmp_path,
        """\
        version: 1
        name: t
        phases:
          - id: a
            kind: baseline
             duration: 3
        """,
    )
    assert ":6:" in msg
    assert "not valid YAML" in msg and "indentation" in msg


def test_unknown_phase_kind_lists_the_allowed_kinds(tmp_path):
    text = GOOD.replace("kind: recall", "kind: recal")
    msg = load_error(tmp_path, text)
    assert ":13: phases[1].phases[0].kind: unknown phase kind 'recal'" in msg
    assert "allowed: instructions, baseline, cue, recall" in msg


def test_negative_duration_names_field_and_line(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("duration: 5", "duration: -5"))
    assert ":8: phases[0].duration: must be greater than 0" in msg
    assert "-5" in msg


def test_missing_memories_for_a_repeat(tmp_path):
    text = GOOD.replace("memories:\n  - {id: m1, cue: a walk by the sea}\n", "")
    msg = load_error(tmp_path, text)
    assert "memories:" in msg and "'memories' is empty" in msg


def test_memory_phase_outside_repeat_needs_a_memory(tmp_path):
    text = GOOD + "  - id: desc\n    kind: description\n"
    msg = load_error(tmp_path, text)
    assert ":15: phases[2]:" in msg
    assert "memory: <id>" in msg


def test_unknown_field_lists_allowed_fields(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("duration: 5", "durration: 5"))
    assert "phases[0].durration: unknown field 'durration'" in msg
    assert "eyes" in msg and "duration" in msg  # baseline's own fields are offered


def test_bad_enum_value_says_what_is_allowed(tmp_path):
    text = GOOD.replace("    duration: 5\n", "    duration: 5\n    eyes: shut\n", 1)
    msg = load_error(tmp_path, text)
    assert "phases[0].eyes:" in msg and "'open' or 'closed'" in msg and "'shut'" in msg


def test_missing_duration_for_a_timed_phase(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("    duration: 5\n", "", 1))
    assert "phases[0]:" in msg and "needs 'duration'" in msg


def test_duplicate_phase_ids_and_unknown_memory(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("id: rec", "id: base"))
    assert ":12: phases[1].phases[0].id: phase id 'base' is used twice" in msg
    text = GOOD + "  - id: c\n    kind: cue\n    duration: 2\n    memory: m9\n"
    msg = load_error(tmp_path, text)
    assert "phases[2].memory: memory 'm9' is not in 'memories'; allowed: m1" in msg


def test_newer_format_version_is_refused(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("version: 1", "version: 7"))
    assert ":1: version: protocol format version 7 is not supported" in msg


def test_several_problems_are_reported_together(tmp_path):
    text = GOOD.replace("duration: 5", "duration: -5").replace("kind: recall", "kind: nope")
    msg = load_error(tmp_path, text)
    assert "phases[0].duration" in msg and "phases[1].phases[0].kind" in msg


def test_not_a_mapping_and_missing_file(tmp_path):
    msg = load_error(tmp_path, "- just\n- a list\n")
    assert "a protocol is a mapping" in msg
    with pytest.raises(ConfigError, match="does not exist"):
        load_protocol(tmp_path / "nope.yaml")


def test_cli_reports_a_bad_protocol_in_one_line(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("duration: 5", "duration: -5"))
    out = tmp_path / "never.h5"
    rc = main(["demo", "--protocol", str(path), "--out", str(out), "--no-offline"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("recall-lab demo: error: ") and "phases[0].duration" in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing is created for a protocol that does not load


def test_end_conditions_must_fit_the_phase(tmp_path):
    text = GOOD.replace("    duration: 5\n", "    duration: 5\n    until: submit\n", 1)
    msg = load_error(tmp_path, text)
    assert "phases[0]:" in msg and "baseline phase has nothing to submit" in msg
    text = GOOD.replace("    duration: 5\n", "    duration: 5\n    until: key\n", 1)
    msg = load_error(tmp_path, text)
    assert "'duration' is only used when the phase ends on time" in msg
    assert "max_duration" in msg


def test_music_file_must_exist_next_to_the_protocol(tmp_path):
    text = GOOD + "  - id: listen\n    kind: music\n    duration: 30\n    file: song.wav\n"
    msg = load_error(tmp_path, text)
    assert ":18: phases[2].file: music file 'song.wav' not found" in msg
    (tmp_path / "song.wav").write_bytes(b"RIFF")
    protocol = load_protocol(tmp_path / "p.yaml")
    assert protocol.phases[2].file == "song.wav"
