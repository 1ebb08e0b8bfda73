"""MP4 composition (H.264 video, AAC audio) with ffmpeg, and duration checks with ffprobe."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from data_schema.errors import RecallLabError


def ffmpeg_exe() -> str:
    """The system ffmpeg, else the one bundled with imageio-ffmpeg."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise RecallLabError(
            "ffmpeg not found; install it (apt install ffmpeg) or pip install imageio-ffmpeg"
        ) from exc


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV (what every player and ffmpeg read)."""
    from scipy.io import wavfile

    pcm = np.clip(np.asarray(audio, dtype=np.float32), -1, 1)
    wavfile.write(path, rate, (pcm * 32767).astype(np.int16))


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: float,
    audio_wav: Path | None,
    *,
    crf: int = 18,
) -> None:
    """Encode frames (uint8 HxWx3, piped raw) and a WAV file into an MP4.

    The audio is AAC at 192 kb/s; the video H.264 (yuv420p, so every player shows it) with the
    frame count the caller gives, so video length is ``n_frames / fps``. Without ``audio_wav``
    the MP4 is silent (the per-segment animation clips).
    """
    w, h = size
    audio_in = ["-i", str(audio_wav), "-map", "0:v", "-map", "1:a"] if audio_wav else []
    audio_out = ["-c:a", "aac", "-b:a", "192k"] if audio_wav else ["-an"]
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-r",
        f"{fps}",
        "-i",
        "-",
        *audio_in,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        str(crf),
        "-preset",
        "medium",
        *audio_out,
        "-movflags",
        "+faststart",
        str(path),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for f in frames:
            if f.shape != (h, w, 3):
                raise ValueError(f"frame shape {f.shape}, expected {(h, w, 3)}")
            proc.stdin.write(np.ascontiguousarray(f).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stderr.close()
        raise
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.wait() != 0:
        raise RecallLabError(f"ffmpeg could not write {path}: {err.strip().splitlines()[-1:]}")


def probe_durations(path: Path) -> dict[str, float]:
    """Duration in seconds of each stream kind (``video``, ``audio``) in a media file."""
    exe = shutil.which("ffprobe")
    if not exe:
        raise RecallLabError("ffprobe not found; install ffmpeg (apt install ffmpeg)")
    out = subprocess.run(
        [exe, "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res = {}
    for s in json.loads(out)["streams"]:
        res[s["codec_type"]] = float(s.get("duration", "nan"))
        res[s["codec_type"] + "_codec"] = s.get("codec_name")
        if s["codec_type"] == "video":
            res["frames"] = int(s.get("nb_frames", 0))
    return res
