"""A sound card for the rig: an ALSA default device that appends what it plays to a file.

There is no sound card here, so PortAudio plays into an ALSA ``file`` PCM set up in a
temporary ``~/.asoundrc`` (the app runs with that HOME). The plugin truncates a plain file at
every open, so it writes through ``cat >>``: every sample played, in order, as raw 16-bit mono.
"""

from __future__ import annotations

from pathlib import Path

ASOUNDRC = """
pcm.!default {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm "null"
            file "| cat >> {played}"
            format "raw"
        }}
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
"""


def playback_home(home: Path, rate: int) -> Path:
    """Make ``home`` (created) a HOME whose default sound output is recorded at ``rate`` Hz
    into ``home/played.raw`` (little-endian int16, mono); returns that file's path."""
    home.mkdir(parents=True, exist_ok=True)
    played = home / "played.raw"
    (home / ".asoundrc").write_text(ASOUNDRC.format(played=played, rate=rate))
    return played
