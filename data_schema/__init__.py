"""The recall-lab session file: spec (``SPEC.md``), writer, reader, validator, import/export.

Importing this package is cheap; MNE and other heavy libraries load only in the functions that
need them.
"""

from data_schema.errors import (
    ConfigError,
    DiskFullError,
    RecallLabError,
    SessionExistsError,
    SessionFileError,
    SourceError,
)
from data_schema.types import Event, StreamInfo

FORMAT = "recall-lab-session"
SCHEMA_VERSION = "1.2"

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "ConfigError",
    "DiskFullError",
    "Event",
    "RecallLabError",
    "SessionExistsError",
    "SessionFileError",
    "SourceError",
    "StreamInfo",
]
