"""Source strings, as typed in the CLI and the console, become the right configured source."""

from __future__ import annotations

import pytest

from data_schema.errors import SourceError
from drivers.brainflow_source import BrainFlowSource
from drivers.lsl_source import LslSource
from drivers.spec import parse_source


def test_lsl_specs_carry_lookup_and_options_converted_from_text():
    src = parse_source("lsl:type=EEG?timeout=2.5&markers=none&stall_timeout=1", stall_timeout=5)
    assert isinstance(src, LslSource)
    assert (src.prop, src.value, src.lookup) == ("type", "EEG", "type=EEG")
    assert src.timeout == 2.5 and src.markers is None
    assert src.stall_timeout == 1.0  # the spec wins over the caller's default
    by_name = parse_source("lsl:Enobio20?markers=Triggers,PsychoPy&dejitter=false")
    assert (by_name.prop, by_name.value) == ("name", "Enobio20")
    assert by_name.markers == ["Triggers", "PsychoPy"] and by_name.dejitter is False
    assert parse_source("lsl:source_id=amp-7").markers == "auto"


def test_brainflow_specs_carry_board_and_params():
    src = parse_source("brainflow:cyton?serial_port=/dev/ttyUSB0")
    assert isinstance(src, BrainFlowSource)
    assert (src.board_spec, src.params) == ("cyton", {"serial_port": "/dev/ttyUSB0"})
    assert parse_source("synthetic").board_spec == "synthetic"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "unknown source ''"),
        ("cyton", "unknown source 'cyton'"),
        ("lsl:", "unknown source 'lsl:'"),
        ("lsl:x?prop=type", "prop= is not an option"),
        ("lsl:x?markers=none&dejitter=maybe", "dejitter='maybe' is not true/false"),
        ("replay:x.h5?speed=fast", "replay speed='fast'"),
        ("replay:x.h5?speed=-2", "replay speed='-2'"),
    ],
)
def test_bad_specs_are_one_clear_line(spec, message):
    with pytest.raises(SourceError) as err:
        parse_source(spec)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
