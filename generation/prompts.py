"""Per-segment prompts: the memory's description plus affect descriptors.

The lexicon is editable (a JSON file with ``positive`` and ``negative`` word lists for ``image``
and ``music``); stronger affect adds more descriptors, neutral keeps the description as it is.
CLIP reads 77 tokens, so the description is condensed until description plus descriptors fit,
and the descriptors are never the part that is cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from data_schema.errors import ConfigError
from generation.segments import Segment

DEFAULT_LEXICON: dict[str, dict[str, list[str]]] = {
    "positive": {
        "image": ["warm golden light", "joyful", "vibrant colors", "serene", "radiant", "tender"],
        "music": ["uplifting", "major key", "warm", "bright melody", "gentle", "hopeful"],
    },
    "negative": {
        "image": ["gloomy", "dark muted colors", "melancholic", "cold light", "tense", "lonely"],
        "music": ["melancholic", "minor key", "slow", "somber", "tense", "dark strings"],
    },
}
STYLE = {"image": "", "music": "instrumental"}
MAX_DESCRIPTORS = 4

# Words that carry little of a memory's content; dropped first when condensing.
_FILLER = set(
    """a an the and or but so then that this these those it its was were is are be been being
    i me my we our us you your he she they them his her their there here very really just
    quite also too of to in on at for with from by as about into over after before when while
    had has have do did does would could should will can may might""".split()
)


@dataclass(frozen=True)
class Lexicon:
    """Affect descriptors per valence and medium."""

    words: dict[str, dict[str, list[str]]] = field(default_factory=lambda: DEFAULT_LEXICON)

    @classmethod
    def load(cls, path: str | Path | None) -> Lexicon:
        """The default lexicon, or one read from a JSON file (validated)."""
        if path is None:
            return cls()
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"lexicon {p}: cannot read JSON ({exc})") from exc
        for affect in ("positive", "negative"):
            for medium in ("image", "music"):
                words = data.get(affect, {}).get(medium) if isinstance(data, dict) else None
                if (
                    not isinstance(words, list)
                    or not words
                    or not all(isinstance(w, str) and w.strip() for w in words)
                ):
                    raise ConfigError(
                        f"lexicon {p}: '{affect}.{medium}' must be a non-empty list of words"
                    )
        return cls(data)

    def descriptors(self, affect: str, strength: float, medium: str) -> list[str]:
        """1..MAX_DESCRIPTORS words, more for stronger affect; none for neutral."""
        if affect == "neutral":
            return []
        words = self.words[affect][medium]
        n = 1 + round(max(0.0, min(1.0, strength)) * (MAX_DESCRIPTORS - 1))
        return list(words[: min(n, len(words))])


def word_count_tokens(text: str) -> int:
    """A tokenizer-free estimate (CLIP BPE uses about 1.3 tokens per English word)."""
    return round(1.3 * len(re.findall(r"\w+|[^\w\s]", text)))


def condense(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """Shorten ``text`` to at most ``budget`` tokens, keeping its content words in order.

    Filler words go first, then words from the end; sentences are kept whole while they fit.
    """
    text = " ".join(text.split())
    if budget <= 0:
        return ""
    if count_tokens(text) <= budget:
        return text
    words = [w for w in re.findall(r"[\w'-]+", text) if w.lower() not in _FILLER]
    out = " ".join(words)
    while words and count_tokens(out) > budget:
        words.pop()
        out = " ".join(words)
    return out


@dataclass(frozen=True)
class SegmentPrompt:
    """What a segment's image and music are asked to show."""

    segment: int
    image: str
    music: str
    descriptors_image: list[str]
    descriptors_music: list[str]
    description_condensed: bool


def build_prompts(
    description: str,
    segments: list[Segment],
    lexicon: Lexicon,
    *,
    count_tokens: Callable[[str], int] = word_count_tokens,
    max_tokens: int = 75,
) -> list[SegmentPrompt]:
    """One prompt per segment.

    Parameters
    ----------
    description
        The participant's description of the memory (may be long).
    segments
        Affect segments.
    lexicon
        Affect descriptors.
    count_tokens
        Tokens a text takes in the image model's tokenizer (without BOS/EOS).
    max_tokens
        Token budget of the image prompt: CLIP's 77 minus BOS and EOS.
    """
    out = []
    for seg in segments:
        prompts = {}
        condensed = False
        descs = {}
        for medium in ("image", "music"):
            d = lexicon.descriptors(seg.affect, seg.strength, medium)
            descs[medium] = d
            tail = ", ".join([*d, STYLE[medium]] if STYLE[medium] else d)
            suffix = f", {tail}" if tail else ""
            body = condense(description, max_tokens - count_tokens(suffix), count_tokens)
            condensed |= body != " ".join(description.split())
            prompts[medium] = (body + suffix).strip(" ,")
        out.append(
            SegmentPrompt(
                seg.index,
                prompts["image"],
                prompts["music"],
                descs["image"],
                descs["music"],
                condensed,
            )
        )
    return out
