"""A study: many participants' session files in one folder with BIDS-style names.

Layout (``recall-lab study init|add|status``, and the console when it records into a study)::

    STUDY/
      study.yaml                      name, task, when it was made (a user may edit it)
      sub-P001/
        ses-01/
          sub-P001_ses-01_task-recall_run-01_eeg.h5
          sub-P001_ses-01_task-recall_run-02_eeg.h5
        ses-02/ ...
      sub-P002/ ...

Session files keep their own attributes (the exact pseudonym, protocol, start time); the
names only group and sort them: ``sub`` is the pseudonym's letters and digits, ``ses`` the
visit (recordings on the same day share one), ``task`` the protocol, ``run`` the recording's
number within the session and task. Files are copied in, never moved or changed, and a copy
appears complete or not at all. Qt-free.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_schema.errors import ConfigError, RecallLabError, SessionFileError
from data_schema.names import bids_label, task_label

STUDY_FILE = "study.yaml"
FORMAT = "recall-lab study"
VERSION = 1
SESSION_NAME = re.compile(
    r"^sub-(?P<sub>[A-Za-z0-9]+)_ses-(?P<ses>[A-Za-z0-9]+)_task-(?P<task>[A-Za-z0-9]+)"
    r"_run-(?P<run>\d+)_eeg\.h5$"
)


class StudyError(RecallLabError):
    """A study folder is missing, foreign or cannot take a file."""


@dataclass(frozen=True)
class StudySession:
    """One session file of a study, as its name places it."""

    path: Path
    subject: str
    session: str
    task: str
    run: int

    def relative(self, root: Path) -> str:
        return str(self.path.relative_to(root))


class Study:
    """An existing study folder (:meth:`init` makes one, :meth:`open` reads one)."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.root.name)

    @property
    def task(self) -> str:
        return bids_label(str(self.meta.get("task") or ""), "recall")

    # ------------------------------------------------------------------ making, opening
    @classmethod
    def init(cls, root: str | Path, *, name: str | None = None, task: str = "recall") -> Study:
        """Make a new, empty study at ``root`` (a new or empty folder)."""
        import yaml

        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StudyError(f"{root} is a file: give a new or empty folder for the study")
        if (root / STUDY_FILE).exists():
            raise StudyError(f"{root} is already a study ({STUDY_FILE} exists)")
        if root.is_dir() and any(root.iterdir()):
            raise StudyError(
                f"{root} is not empty: give a new or empty folder (sessions are added with "
                "'recall-lab study add')"
            )
        if not bids_label(task):
            raise StudyError(f"--task {task!r}: give letters and digits (e.g. recall)")
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "name": name or root.name,
            "task": bids_label(task),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            root.mkdir(parents=True, exist_ok=True)
            _atomic_write(root / STUDY_FILE, yaml.safe_dump(meta, sort_keys=False))
        except OSError as exc:
            raise StudyError(f"cannot make the study in {root}: {exc.strerror or exc}") from None
        return cls(root, meta)

    @classmethod
    def open(cls, root: str | Path) -> Study:
        """The study at ``root``, or a one-line :class:`StudyError`."""
        import yaml

        root = Path(root)
        meta_file = root / STUDY_FILE
        if not root.is_dir():
            raise StudyError(
                f"{root}: no such study folder (make one with 'recall-lab study init {root}')"
            )
        if not meta_file.is_file():
            raise StudyError(
                f"{root} is not a study (no {STUDY_FILE}); make one with 'recall-lab study init "
                f"{root}'"
            )
        try:
            meta = yaml.safe_load(meta_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{meta_file} cannot be read: {first}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StudyError(f"{meta_file} is not a recall-lab study description")
        if int(meta.get("version", VERSION)) > VERSION:
            raise StudyError(f"{meta_file}: study version {meta['version']} is newer than this")
        return cls(root, meta)

    # ------------------------------------------------------------------ contents
    def sessions(self) -> list[StudySession]:
        """Every session file in the study, by subject, session, task and run."""
        found = [s for s in map(_parse, self.root.glob("sub-*/ses-*/*.h5")) if s is not None]
        return sorted(found, key=lambda s: (s.subject, s.session, s.task, s.run))

    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sessions()})

    # ------------------------------------------------------------------ adding
    def place(
        self,
        participant_id: str,
        started: dt.date,
        *,
        task: str | None = None,
        session: str | None = None,
        existing: list[Path] | None = None,
    ) -> Path:
        """Where a new recording of ``participant_id`` made on ``started`` goes.

        The session is the one recorded on the same day, else the next number; ``session``
        chooses it instead. The run is the next free one for that session and task.
        ``existing``: the participant's files, if the caller listed them already.
        """
        sub = bids_label(participant_id)
        if not sub:
            raise StudyError(
                "the session has no participant pseudonym; import it again with --participant"
            )
        task = bids_label(task or "", self.task)
        if existing is None:
            existing = [s for s in self.sessions() if s.subject == sub]
        else:
            existing = [s for s in map(_parse, existing) if s is not None and s.subject == sub]
        self._check_same_participant(sub, participant_id, existing)
        if session is not None:
            ses = bids_label(session)
            if not ses:
                raise StudyError(f"--session {session!r}: give letters and digits (e.g. 02)")
        else:
            days: dict[str, dt.date] = {}
            for s in existing:
                day = _started_day(s.path)
                if day is not None:
                    days[s.session] = min(days.get(s.session, day), day)
            same_day = [k for k, d in days.items() if d == started]
            if same_day:
                ses = sorted(same_day)[-1]
            else:
                numbers = [int(s.session) for s in existing if s.session.isdigit()]
                ses = f"{max(numbers, default=0) + 1:02d}"
        runs = [s.run for s in existing if s.session == ses and s.task == task]
        run = max(runs, default=0) + 1
        name = f"sub-{sub}_ses-{ses}_task-{task}_run-{run:02d}_eeg.h5"
        return self.root / f"sub-{sub}" / f"ses-{ses}" / name

    def _check_same_participant(self, sub: str, participant_id: str, existing) -> None:
        """Two pseudonyms with one label (``P-01`` and ``P01``) would share a folder."""
        for s in existing[:1]:
            other = _attrs(s.path).get("participant_id")
            if other and other != participant_id:
                raise StudyError(
                    f"pseudonym {participant_id!r} and the study's {other!r} both become "
                    f"sub-{sub}; rename one (BIDS labels keep letters and digits only)"
                )

    def add(
        self, path: str | Path, *, session: str | None = None, task: str | None = None
    ) -> StudySession:
        """Copy the session file ``path`` into the study under its BIDS-style name.

        The file is checked against the session spec first; one that is already in the
        study (same session id) is refused. ``path`` itself is never changed.
        """
        from data_schema.validator import refuse_invalid_session

        path = Path(path)
        refuse_invalid_session(path, "add to a study")
        attrs = _attrs(path)
        sid = str(attrs.get("session_id", ""))
        for s in self.sessions():
            if sid and _attrs(s.path).get("session_id") == sid:
                raise StudyError(f"{path} is already in the study as {s.relative(self.root)}")
        started = _day(attrs.get("started_at")) or dt.date.today()
        dest = self.place(
            str(attrs.get("participant_id", "")),
            started,
            task=task or task_label(str(attrs.get("protocol") or "")),
            session=session,
        )
        if dest.exists():
            raise StudyError(f"{dest} exists already; nothing was added")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _atomic_copy(path, dest)
        except OSError as exc:
            raise StudyError(f"cannot copy {path} into the study: {exc.strerror or exc}") from None
        return _parse(dest)


# ---------------------------------------------------------------------------- helpers
def _parse(p: Path) -> StudySession | None:
    """``p`` as a study session, if its name and folders are a study's."""
    m = SESSION_NAME.match(p.name)
    if m is None or p.parent.name != f"ses-{m['ses']}":
        return None
    if p.parent.parent.name != f"sub-{m['sub']}":
        return None
    return StudySession(p, m["sub"], m["ses"], m["task"], int(m["run"]))


def _attrs(path: Path) -> dict[str, Any]:
    from data_schema.reader import open_session_file

    try:
        with open_session_file(path) as f:
            return {k: f.attrs[k] for k in f.attrs}
    except (SessionFileError, OSError):
        return {}


def _day(text: Any) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _started_day(path: Path) -> dt.date | None:
    return _day(_attrs(path).get("started_at"))


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through a hidden temporary file: complete or absent, and never
    over a file that appeared at ``dest`` meanwhile."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, dest)  # fails if dest exists
        except FileExistsError:
            raise StudyError(f"{dest} appeared while copying; nothing was added") from None
        except OSError:  # a file system without hard links
            if dest.exists():
                raise StudyError(f"{dest} appeared while copying; nothing was added") from None
            os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
