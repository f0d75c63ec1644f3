"""The customer's mood: how negative a message reads, and whether it names an escalation phrase.

Offline and deterministic: VADER (a lexicon and a few rules, no model download, no network) scores each
message, and the policy's complaint phrases are looked up as whole words. The handoff packet's "Mood:"
line comes from `trend`. Pure: no database and no platform code, so every surface shares one reading.

Phrase matching is case-insensitive and ignores punctuation, repeated spaces, full-width letters and
invisible characters ("Cancel!", "CANCEL my order", "speak-to-a-manager" all match), but it matches whole
words only: "cancel" does not match "cancelled", "refund" does not match "refunds" or "non-refundable".
Stemming would flag "I'm glad you didn't cancel" as often as it helps, so operators list the inflections
they want escalated ("cancel", "cancellation", ...) in the policy. In scripts written without spaces
between words (Chinese, Japanese, Thai, ...) and in Korean, whose words take particles, a phrase matches
inside longer runs of letters too, since there is no word boundary to look for.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from bot.policy import Complaints

NEUTRAL_BAND = 0.05
"""VADER's conventional cut-off: a compound score within ±0.05 is neutral."""
DEFAULT_UPSET_BELOW = -0.5
"""The policy's default `complaints.upset_below`, for `trend` when it is given no threshold."""
TREND_STEP = 0.3
"""How far the score must move between the first and the latest message to count as a change; VADER
moves a few tenths on single words ("ok" scores 0.3), so smaller moves are noise."""
HEAD_CHARS = 2000
TAIL_CHARS = 2000
"""How much of a long message is scored: its start and its end. VADER's running time grows faster than
the text (a 100,000-character message takes tens of seconds), its compound score saturates at ±1 long
before that, and in long messages the middle is mostly pasted logs or quoted mail; the customer's own
words, and how they feel, are at the start and the end. Phrases are still looked for in the whole text,
which is cheap."""
_CUT_SLACK = 200
"""A window ends at a space within this many characters of its edge, so no word is cut in half."""
_UNSPACED = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
"""Scripts without spaces between words (and Korean, whose words take particles): no word boundaries."""
LABELS = ("upset", "negative", "neutral", "positive")


@dataclass(frozen=True)
class Mood:
    """One message's reading: VADER's compound score (-1 to 1), the escalation phrases it names (as
    configured, in order of appearance, each once), and whether it counts as upset (the score is below
    the reader's threshold, or a phrase was found)."""

    score: float
    phrases: tuple[str, ...] = ()
    upset: bool = False

    @property
    def label(self) -> str:
        """The score in words (see `label_for`), or "upset" when the message counts as upset."""
        return "upset" if self.upset else label_for(self.score, upset_below=-math.inf)


def label_for(score: float, upset_below: float = DEFAULT_UPSET_BELOW) -> str:
    """A score in words: "upset" below the threshold, then "negative" to -0.05, "neutral" within ±0.05
    (VADER's convention) and "positive" from 0.05."""
    if score < upset_below:
        return "upset"
    if score <= -NEUTRAL_BAND:
        return "negative"
    if score < NEUTRAL_BAND:
        return "neutral"
    return "positive"


class MoodReader:
    """Reads messages against the policy's complaint phrases and upset threshold. VADER's analyzer is
    built on the first read (it loads its lexicon from disk) and reused."""

    def __init__(self, phrases: Sequence[str], upset_below: float) -> None:
        if not -1 <= upset_below <= 1:  # also refuses NaN
            raise ValueError(f"upset_below must be between -1 and 1, not {upset_below}")
        self.upset_below = upset_below
        self.phrases = tuple(phrases)
        wanted: dict[str, str] = {}
        for phrase in self.phrases:
            key = _for_matching(phrase)
            if key:
                wanted.setdefault(key, phrase)  # the first spelling configured is the one reported
        self._wanted = tuple(wanted.items())

    @classmethod
    def from_policy(cls, complaints: Complaints) -> MoodReader:
        """The reader the policy's [complaints] section describes."""
        return cls(complaints.phrases, complaints.upset_below)

    @property
    def _analyzer(self) -> SentimentIntensityAnalyzer:
        return _vader()

    def warm(self) -> None:
        """Load VADER's lexicon now (about 0.2 s), at start-up, rather than on the first customer's
        message, where it would hold up every other message and command for as long."""
        _vader()

    def read(self, text: str) -> Mood:
        """Score a message and find the phrases in it; an empty or blank message is neutral."""
        score = self.score(text)
        found = self.find_phrases(text)
        return Mood(score=score, phrases=found, upset=score < self.upset_below or bool(found))

    def score(self, text: str) -> float:
        """VADER's compound score of the message (its start and end when it is long), -1 to 1."""
        cleaned = _for_scoring(text)
        if not cleaned.strip():
            return 0.0
        compound = self._analyzer.polarity_scores(_window(cleaned))["compound"]
        return max(-1.0, min(1.0, float(compound)))

    def find_phrases(self, text: str) -> tuple[str, ...]:
        """The configured phrases the text names as whole words, in order of first appearance."""
        if not self._wanted or not text:
            return ()
        haystack = _for_matching(text)
        hits: list[tuple[int, int, str]] = []
        for index, (key, phrase) in enumerate(self._wanted):
            at = _find_whole(haystack, key)
            if at >= 0:
                hits.append((at, index, phrase))
        return tuple(phrase for _, _, phrase in sorted(hits))


def trend(scores: Sequence[float], *, upset_below: float = DEFAULT_UPSET_BELOW) -> str | None:
    """The packet's "Mood:" line from a ticket's message scores, oldest first: where the mood is now and
    which way it moved between the first and the latest message, e.g. "upset, getting worse (-0.2 → -0.8
    over 4 messages)". None when there is nothing to go on (no scores, or none that is a number)."""
    known = [s for s in scores if math.isfinite(s)]
    if not known:
        return None
    first, last = known[0], known[-1]
    label = label_for(last, upset_below)
    count = len(known)
    if count == 1:
        return f"{label} ({_number(last)}, 1 message)"
    change = last - first
    if abs(change) < TREND_STEP:
        return f"steady, {label} ({_number(last)}, {count} messages)"
    if change < 0:
        direction = "getting worse"
    elif label in ("neutral", "positive") and label_for(first, upset_below) in ("upset", "negative"):
        direction = "calmer now"
    else:
        direction = "improving"
    return f"{label}, {direction} ({_number(first)} → {_number(last)} over {count} messages)"


def _number(score: float) -> str:
    return f"{round(score, 1) + 0.0:.1f}"  # + 0.0 turns -0.0 into 0.0


# --- text preparation ----------------------------------------------------------------------------


class _Table(dict[int, int | str | None]):
    """A `str.translate` table filled on demand: each character's mapping is worked out once."""

    def __init__(self, matching: bool) -> None:
        super().__init__()
        self._matching = matching

    def __missing__(self, code: int) -> int | str | None:
        kind = unicodedata.category(chr(code))
        value: int | str | None = code
        if code == 0x200B:  # zero-width space: it separates words
            value = " "
        elif kind in ("Cf", "Cs"):  # soft hyphens, joiners, direction marks, stray surrogates
            value = None
        elif kind == "Cc" or (self._matching and kind[0] in "PZ"):  # punctuation never decides a match
            value = " "
        self[code] = value
        return value


_MATCHING = _Table(matching=True)
_SCORING = _Table(matching=False)


def _for_matching(text: str) -> str:
    """Case-folded, compatibility-normalised (full-width letters are plain ones), punctuation and invisible
    characters gone, single spaces; the same treatment for phrases and messages, so they line up."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_MATCHING)
    return " ".join(folded.split())


def _for_scoring(text: str) -> str:
    """Text for VADER: compatibility-normalised (VADER's lexicon is ASCII), control and invisible
    characters gone; case is kept, since VADER reads ALL CAPS as emphasis."""
    return unicodedata.normalize("NFKC", text).translate(_SCORING)


def _window(text: str) -> str:
    """The start and end of a long text (see HEAD_CHARS), each cut at a space."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS + _CUT_SLACK:
        return text
    head = text[:HEAD_CHARS]
    space = head.rfind(" ", HEAD_CHARS - _CUT_SLACK)
    head = head[:space] if space > 0 else head
    tail = text[-TAIL_CHARS:]
    space = tail.find(" ", 0, _CUT_SLACK)
    tail = tail[space + 1 :] if space >= 0 else tail
    return f"{head}\n\n{tail}"


def _wordish(char: str) -> bool:
    return unicodedata.category(char)[0] in "LNM"


def _unspaced(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _UNSPACED)


def _find_whole(haystack: str, needle: str) -> int:
    """Where `needle` first occurs in `haystack` as whole words, or -1. A letter, digit or mark next to
    either end of a match means it is part of a longer word, except in scripts without word breaks."""
    check_start = _wordish(needle[0]) and not _unspaced(needle[0])
    check_end = _wordish(needle[-1]) and not _unspaced(needle[-1])
    at = haystack.find(needle)
    while at >= 0:
        end = at + len(needle)
        starts_word = not check_start or at == 0 or not _wordish(haystack[at - 1])
        ends_word = not check_end or end == len(haystack) or not _wordish(haystack[end])
        if starts_word and ends_word:
            return at
        at = haystack.find(needle, at + 1)
    return -1


@cache
def _vader() -> SentimentIntensityAnalyzer:
    """One analyzer per process: it only reads its lexicon, and loading it is the slow part."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()
