"""A music library: the clips a ``listening`` phase plays, with optional affect norms.

A library is a folder with a ``clips.csv`` file and the audio files it names::

    id,file,title,valence,arousal
    calm-01,calm-01.wav,Slow strings,6.5,2.5
    tense-02,audio/tense-02.flac,Low drones,2.8,6.9

``id`` is a short code (letters, digits, ``_ . -``), unique in the library; ``file`` is
relative to the folder (any format libsndfile reads: WAV, FLAC, OGG, MP3); ``title`` is free
text; ``valence`` and ``arousal`` are optional norms on the 1-9 Self-Assessment Manikin
scale (empty when unknown). Sessions store each clip's id and the SHA-256 of its file, so a
later analysis can check that it uses the same audio.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_schema.errors import ConfigError

LIBRARY_FILE = "clips.csv"
CLIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
COLUMNS = ("id", "file", "title", "valence", "arousal")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Clip:
    """One piece of music of a library."""

    id: str
    file: Path
    title: str = ""
    valence: float | None = None
    arousal: float | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def sha256(self) -> str:
        """SHA-256 of the audio file's bytes (read once)."""
        if "sha256" not in self._cache:
            self._cache["sha256"] = file_sha256(self.file)
        return self._cache["sha256"]

    @property
    def duration(self) -> float:
        """Seconds of audio in the file."""
        if "duration" not in self._cache:
            import soundfile

            try:
                info = soundfile.info(str(self.file))
            except Exception as exc:
                raise ConfigError(
                    f"music library: cannot read clip {self.id!r} ({self.file}): {exc}"
                ) from None
            self._cache["duration"] = float(info.frames) / float(info.samplerate)
        return self._cache["duration"]

    def read(self, sample_rate: int | None = None):
        """The clip's audio as float32 ``[samples x channels]`` and its rate (resampled to
        ``sample_rate`` when given)."""
        import numpy as np
        import soundfile

        try:
            audio, rate = soundfile.read(str(self.file), dtype="float32", always_2d=True)
        except Exception as exc:
            raise ConfigError(
                f"music library: cannot read clip {self.id!r} ({self.file}): {exc}"
            ) from None
        if sample_rate is not None and int(sample_rate) != int(rate):
            from fractions import Fraction

            from scipy.signal import resample_poly

            fr = Fraction(int(sample_rate), int(rate)).limit_denominator(1000)
            audio = resample_poly(audio, fr.numerator, fr.denominator, axis=0).astype(np.float32)
            rate = int(sample_rate)
        return audio, int(rate)


@dataclass(frozen=True)
class MusicLibrary:
    """The clips of a library folder, in file order."""

    folder: Path
    clips: tuple[Clip, ...]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.clips]

    def get(self, clip_id: str) -> Clip:
        for c in self.clips:
            if c.id == clip_id:
                return c
        raise ConfigError(
            f"music library {self.folder}: no clip {clip_id!r}; it has {', '.join(self.ids)}"
        )


def _rating(value: str, where: str, column: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        v = float(value)
    except ValueError:
        raise ConfigError(f"{where}: {column} {value!r} is not a number (1-9, or empty)") from None
    if not 1.0 <= v <= 9.0:
        raise ConfigError(f"{where}: {column} {v:g} is outside the 1-9 SAM scale")
    return v


def load_library(folder: str | Path, *, check_audio: bool = True) -> MusicLibrary:
    """Read a library folder's ``clips.csv``.

    Raises
    ------
    ConfigError
        The folder or its ``clips.csv`` is missing, a row is malformed, an id is repeated, a
        file is missing or (``check_audio``) unreadable; the message names the file and line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(
            f"music library {root} is not a folder; give a folder holding {LIBRARY_FILE} and "
            "the audio files"
        )
    table = root / LIBRARY_FILE
    if not table.is_file():
        raise ConfigError(
            f"music library {root} has no {LIBRARY_FILE}; write one with the columns "
            f"{','.join(COLUMNS)} (valence and arousal may be empty)"
        )
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {table}: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "file"]:
        raise ConfigError(
            f"{table}:1: the first line must name the columns {','.join(COLUMNS)} "
            "(id and file first; title, valence, arousal optional)"
        )
    header = [c.strip().lower() for c in rows[0]]
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise ConfigError(
            f"{table}:1: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(COLUMNS)}"
        )
    clips: list[Clip] = []
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{table}:{line}"
        if len(row) > len(header):
            raise ConfigError(f"{where}: {len(row)} values for {len(header)} columns")
        rec = dict(zip(header, [c.strip() for c in row] + [""] * (len(header) - len(row))))
        cid = rec["id"]
        if not CLIP_ID.match(cid):
            raise ConfigError(
                f"{where}: clip id {cid!r}: use up to 64 letters, digits, '_', '.' or '-'"
            )
        if cid in seen:
            raise ConfigError(f"{where}: clip id {cid!r} is used twice")
        seen.add(cid)
        path = Path(rec["file"])
        if not rec["file"] or path.is_absolute() or ".." in path.parts:
            raise ConfigError(f"{where}: file {rec['file']!r}: give a path inside {root}")
        path = root / path
        if not path.is_file():
            raise ConfigError(f"{where}: clip {cid!r}: file {rec['file']} not found in {root}")
        clip = Clip(
            cid,
            path,
            rec.get("title", ""),
            _rating(rec.get("valence", ""), where, "valence"),
            _rating(rec.get("arousal", ""), where, "arousal"),
        )
        if check_audio:
            _ = clip.duration
        clips.append(clip)
    if not clips:
        raise ConfigError(f"{table}: no clips listed")
    return MusicLibrary(root, tuple(clips))


def write_library(folder: str | Path, clips: list[dict[str, object]]) -> Path:
    """Write ``clips.csv`` for ``clips`` (dicts with the :data:`COLUMNS` keys) into
    ``folder``; the audio files must be there already. Returns the table's path."""
    root = Path(folder)
    table = root / LIBRARY_FILE
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for c in clips:
            w.writerow(["" if c.get(k) is None else c.get(k) for k in COLUMNS])
    return table
