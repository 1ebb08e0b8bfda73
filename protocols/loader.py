"""Load a protocol YAML file, validating it with errors that name the file, line and field.

A mistake in a protocol file is reported as one line, e.g.::

    demo.yaml:14: phases[1].phases[0].duration: must be greater than 0 (got -5)
    demo.yaml:9: phases[2].kind: unknown phase kind 'recal'; allowed: instructions, baseline, ...

so the experimenter can fix it before a participant is waiting.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from data_schema.errors import ConfigError
from protocols.model import PHASE_KINDS, Protocol, ProtocolValueError

#: Protocols shipped with recall-lab, by name (``recall-lab demo --protocol demo``).
BUILTIN_PROTOCOLS = ("demo", "rym_recall", "listening_demo", "narration_demo")

_MAX_REPORTED = 3


def builtin_protocol_path(name: str) -> Path:
    """Path of a protocol shipped in the ``protocols`` package (``demo``, ``rym_recall``)."""
    if name not in BUILTIN_PROTOCOLS:
        raise ConfigError(
            f"no built-in protocol {name!r}; built-in protocols: {', '.join(BUILTIN_PROTOCOLS)}"
        )
    return Path(str(resources.files("protocols").joinpath(f"{name}.yaml")))


def resolve_protocol(spec: str | Path) -> Path:
    """A file path, or the name of a built-in protocol."""
    p = Path(spec)
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        return p
    return builtin_protocol_path(str(spec))


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file.

    Raises
    ------
    ConfigError
        The file is missing, is not valid YAML, or does not follow the protocol format; the
        message names the file, line and field and says what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"protocol file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read protocol file {path}: {exc}") from None
    return parse_protocol(text, name=str(path), base_dir=path.parent)


def parse_protocol(
    text: str, *, name: str = "<protocol>", base_dir: str | Path | None = None
) -> Protocol:
    """Validate protocol YAML ``text``; ``name`` is used in error messages.

    With ``base_dir`` (the protocol file's folder), files the protocol names (music) must
    exist there, so a missing file is found before the session rather than during it.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise ConfigError(
            f"{name}{line}: not valid YAML ({problem}); check indentation and quoting"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}:1: a protocol is a mapping with 'version', 'name', 'memories' and "
            "'phases'; see docs/protocols.md"
        )
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        messages = [_describe(err, node, name) for err in _relevant(exc.errors())]
        more = len(messages) - _MAX_REPORTED
        text = "; ".join(messages[:_MAX_REPORTED])
        if more > 0:
            text += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(text) from None
    if base_dir is not None:
        _check_files(protocol, node, name, Path(base_dir))
    return protocol


def _check_files(protocol: Protocol, root: yaml.Node, name: str, base_dir: Path) -> None:
    for i, p in enumerate(protocol.phases):
        inner = (
            [((i, "phases", j), q) for j, q in enumerate(p.phases)] if p.kind == "repeat" else []
        )
        for where, q in [((i,), p), *inner]:
            if q.kind == "listening":
                _check_library(q, where, root, name, base_dir)
                continue
            file = getattr(q, "file", None)
            if not file:
                continue
            f = Path(file) if Path(file).is_absolute() else base_dir / file
            if not f.is_file():
                path, node = _field_path(("phases", *where, "file"), root)
                line = f":{node.start_mark.line + 1}" if node is not None else ""
                raise ConfigError(
                    f"{name}{line}: {path}: music file {file!r} not found in {f.parent}; "
                    "give a path relative to the protocol file"
                )


def _check_library(q: Any, where: tuple, root: yaml.Node, name: str, base_dir: Path) -> None:
    """A listening phase's library must load, and hold at least ``clips`` clips."""
    from protocols.library import load_library

    folder = Path(q.library) if Path(q.library).is_absolute() else base_dir / q.library
    path, node = _field_path(("phases", *where, "library"), root)
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    try:
        lib = load_library(folder)
    except ConfigError as exc:
        raise ConfigError(f"{name}{line}: {path}: {exc}") from None
    if q.clips is not None and q.clips > len(lib):
        raise ConfigError(
            f"{name}{line}: {path}: the phase asks for {q.clips} clips but the library has "
            f"{len(lib)}; lower 'clips' or add clips to {folder / 'clips.csv'}"
        )


# ---------------------------------------------------------------------- error mapping
def _relevant(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop duplicates pydantic reports for one mistake (one per union member)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for e in errors:
        key = (tuple(e["loc"]), e["type"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _field_path(loc: tuple[Any, ...], data_node: yaml.Node | None) -> tuple[str, yaml.Node | None]:
    """``phases[2].duration`` and the YAML node nearest to it, following ``loc``."""
    parts: list[str] = []
    node = data_node
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            if isinstance(node, yaml.SequenceNode) and item < len(node.value):
                node = node.value[item]
            continue
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == item), None)
            if child is None:
                keys = {k.value for k, _ in node.value}
                if item in PHASE_KINDS and keys and "kind" in keys:
                    continue  # pydantic's tag for the phase kind, not a field
                if item not in keys:
                    # a missing field: point at the mapping it belongs in
                    parts.append(f".{item}" if parts else str(item))
                    continue
            parts.append(f".{item}" if parts else str(item))
            if child is not None:
                node = child
            continue
        parts.append(f".{item}" if parts else str(item))
    return "".join(parts), node


def _describe(err: dict[str, Any], root: yaml.Node | None, name: str) -> str:
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), ProtocolValueError):
        loc = loc + tuple(ctx["error"].loc)
    if err["type"] == "union_tag_invalid":
        loc = (*loc, "kind")
    path, node = _field_path(loc, root)
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    where = f"{name}{line}: {path}: " if path else f"{name}{line}: "
    kind = err["type"]
    inp = err.get("input")
    if kind == "union_tag_invalid":
        return f"{where}unknown phase kind {ctx.get('tag')!r}; allowed: {', '.join(PHASE_KINDS)}"
    if kind == "union_tag_not_found":
        return f"{where}every phase needs a 'kind'; allowed: {', '.join(PHASE_KINDS)}"
    if kind == "missing":
        return f"{where}required field is missing"
    if kind == "extra_forbidden":
        field = path.rsplit(".", 1)[-1]
        allowed = _allowed_fields(loc)
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{where}unknown field {field!r}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": f"must be greater than {ctx.get('gt')}",
            "greater_than_equal": f"must be at least {ctx.get('ge')}",
            "less_than": f"must be less than {ctx.get('lt')}",
            "less_than_equal": f"must be at most {ctx.get('le')}",
        }
        return f"{where}{words[kind]} (got {inp!r})"
    if kind == "literal_error":
        return f"{where}{_msg(err)} (got {inp!r})"
    if kind == "string_pattern_mismatch":
        return (
            f"{where}{inp!r} is not a valid id: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    if kind == "value_error":
        return f"{where}{_msg(err)}"
    return f"{where}{_msg(err)} (got {inp!r})" if inp is not None else f"{where}{_msg(err)}"


def _msg(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else msg


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names the model at ``loc[:-1]`` accepts (for 'unknown field' hints)."""
    from protocols import model as m

    kinds = {
        "instructions": m.InstructionsPhase,
        "baseline": m.BaselinePhase,
        "cue": m.CuePhase,
        "recall": m.RecallPhase,
        "description": m.DescriptionPhase,
        "sketch": m.SketchPhase,
        "melody": m.MelodyPhase,
        "music": m.MusicPhase,
        "sam": m.SamPhase,
        "listening": m.ListeningPhase,
        "narration": m.NarrationPhase,
        "preference": m.PreferencePhase,
        "repeat": m.RepeatPhase,
    }
    parent = loc[:-1]
    cls: type | None = None
    if not parent:
        cls = Protocol
    elif parent[-1] in kinds:
        cls = kinds[parent[-1]]
    elif parent[-1] == "valence":
        cls = m.ValenceConfig
    elif len(parent) >= 2 and parent[-2] == "memories":
        cls = m.MemoryCue
    if cls is None:
        return []
    return sorted(cls.model_fields)
