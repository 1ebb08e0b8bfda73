"""Errors a user can act on.

Every error that a user's input can cause derives from :class:`RecallLabError`. Its message is
one line that says what is wrong and what to do; the command line prints it and exits with a
non-zero status instead of showing a traceback.
"""

from __future__ import annotations


class RecallLabError(Exception):
    """A problem the user can fix; ``str(err)`` is one line saying what and how."""

    exit_code: int = 2


class SessionFileError(RecallLabError):
    """A session file is missing, foreign, damaged or of an unsupported version."""


class SessionExistsError(SessionFileError):
    """Refusing to overwrite an existing file."""


class DiskFullError(RecallLabError):
    """The disk filled while writing; everything written before is kept."""

    exit_code = 3


class SourceError(RecallLabError):
    """A live source could not be opened or stopped working."""


class ConfigError(RecallLabError):
    """A configuration or protocol file is invalid."""


class Cancelled(RecallLabError):
    """The user cancelled a long job (SIGTERM from the console's Cancel, or Ctrl+C); nothing
    half-made was kept."""

    exit_code = 130
