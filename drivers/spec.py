"""Parse a source specification such as ``brainflow:cyton?serial_port=/dev/ttyUSB0``.

Forms (the same in the CLI and the console):

- ``synthetic``: BrainFlow's synthetic board;
- ``brainflow:<board>[?param=value&...]``: any BrainFlow board by name or id, with its
  BrainFlowInputParams fields (``serial_port``, ``mac_address``, ``ip_address``, ``file``,
  ``master_board``...); the playback-file board also takes ``loop`` and ``timestamps``;
- ``lsl:<name>`` or ``lsl:name=<n>``, ``lsl:type=<t>``, ``lsl:source_id=<id>``: an LSL stream,
  with options ``timeout``, ``markers`` (``auto``, ``none`` or names), ``dejitter``,
  ``max_buflen``, ``stall_timeout``, ``buffer_seconds``;
- ``replay:<file>[?speed=<x>]``: a recall-lab session or any recording MNE or pyxdf reads.

Values after ``?`` are text; each source converts and checks its own, and a wrong one is
refused with one line. See docs/drivers.md.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from data_schema.errors import SourceError
from drivers.base import Source

FORMS = "synthetic, brainflow:<board>[?param=value], lsl:<name>, replay:<file>"


def parse_source(spec: str, **kwargs: float) -> Source:
    """Build (but do not start) the source ``spec`` names."""
    spec = (spec or "").strip()
    kind, _, rest = spec.partition(":")
    target, _, query = rest.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    if kind == "synthetic" and not rest:
        from drivers.brainflow_source import BrainFlowSource

        return BrainFlowSource("synthetic", **kwargs)
    if kind == "brainflow" and target:
        from drivers.brainflow_source import BrainFlowSource

        return BrainFlowSource(target, params, **kwargs)
    if kind == "lsl" and target:
        from drivers.lsl_source import LslSource

        clash = sorted({"prop", "value"} & set(params))
        if clash:
            raise SourceError(f"lsl source: {clash[0]}= is not an option; write lsl:name=<name>")
        prop, eq, value = target.partition("=")
        options = {**kwargs, **params}  # what the user wrote in the spec wins
        if eq and prop in ("name", "type", "source_id"):
            return LslSource(prop=prop, value=value, **options)
        return LslSource(prop="name", value=target, **options)
    if kind == "replay" and target:
        from drivers.replay import ReplaySource

        speed = params.pop("speed", "1")
        try:
            factor = 0.0 if speed == "max" else float(speed)
        except ValueError:
            factor = -1.0
        if factor < 0 or factor != factor:
            raise SourceError(f"replay speed={speed!r}: use a factor such as 1, 2, 0.5, or max")
        return ReplaySource(target, speed=factor, **kwargs)
    raise SourceError(f"unknown source {spec!r}; use one of: {FORMS}")
