"""The customer's mood: VADER scores, escalation phrases as whole words, and the packet's trend line."""

from __future__ import annotations

import math

import pytest

from bot.mood import HEAD_CHARS, LABELS, TAIL_CHARS, Mood, MoodReader, label_for, trend
from bot.policy import Complaints, load_policy

COMPLAINTS = load_policy().complaints
READER = MoodReader.from_policy(COMPLAINTS)
PLAIN = MoodReader([], upset_below=-0.5)
"""No phrases: labels come from the score alone."""


# --- labels from sample messages -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Thank you so much, that fixed it!",
        "Thanks a lot, you've been really helpful 🙂",
        "Great, it works perfectly now. Much appreciated!",
    ],
)
def test_thanks_read_as_positive(text: str):
    mood = READER.read(text)
    assert mood.label == "positive"
    assert mood.score >= 0.05
    assert not mood.upset and mood.phrases == ()


@pytest.mark.parametrize(
    "text",
    [
        "Where is my order #1234?",
        "When will order A-1234 ship?",
        "Can you tell me the delivery date for invoice INV-77?",
        "I changed my address to 12 Baker Street.",
    ],
)
def test_factual_questions_read_as_neutral(text: str):
    mood = READER.read(text)
    assert mood.label == "neutral"
    assert -0.05 < mood.score < 0.05


def test_repeated_chasing_reads_as_negative():
    mood = READER.read("This is the third time I'm writing, absolutely useless")
    assert mood.label in ("negative", "upset")
    assert mood.score <= -0.05


@pytest.mark.parametrize(
    "text",
    [
        "WHY IS NOBODY ANSWERING?! THIS IS A DISGRACE",
        "THIS IS THE THIRD TIME I'M WRITING, ABSOLUTELY USELESS!!!",
        "You people are hopeless and I am furious.",
        "This is terrible service, I hate it",
        "this is taking forever, I'm really frustrated",
    ],
)
def test_angry_messages_read_as_upset(text: str):
    mood = PLAIN.read(text)
    assert mood.upset
    assert mood.label == "upset"
    assert mood.score < -0.5


def test_sarcasm_may_be_missed_but_reads_without_error():
    mood = READER.read("Oh great, another delay. Just wonderful.")
    assert mood.label in LABELS  # VADER takes this at its word; agents read the words themselves


def test_empty_and_blank_messages_are_neutral():
    for text in ("", "   ", "\n\t", "\u200b\u00ad"):
        assert READER.read(text) == Mood(score=0.0, phrases=(), upset=False)
        assert READER.read(text).label == "neutral"


# --- escalation phrases ----------------------------------------------------------------------------


@pytest.mark.parametrize("phrase", COMPLAINTS.phrases)
def test_every_default_phrase_is_found(phrase: str):
    mood = READER.read(f"Hello. About my order: {phrase}, please.")
    assert mood.phrases == (phrase,)
    assert mood.upset and mood.label == "upset"


@pytest.mark.parametrize("phrase", COMPLAINTS.phrases)
def test_default_phrases_are_found_in_capitals_and_at_the_edges(phrase: str):
    assert READER.read(phrase.upper() + "!").phrases == (phrase,)
    assert READER.read(f"...{phrase.title()}").phrases == (phrase,)


@pytest.mark.parametrize(
    "text",
    [
        "Cancel!",
        "cancel my order",
        "I want to CANCEL.",
        "please (cancel) it",
        "«cancel»",
        "cancel_order",
        "\uff43\uff41\uff4e\uff43\uff45\uff4c now",  # full-width letters
        "can\u00adcel it",  # a soft hyphen
        "please\u200bcancel",  # a zero-width space between words
        "\u202ecancel\u202c",  # direction overrides
        "\x00cancel\x07",  # control characters
    ],
)
def test_a_phrase_matches_whatever_the_punctuation_case_or_invisible_characters(text: str):
    assert READER.read(text).phrases == ("cancel",)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("speak to a manager", ("speak to a manager",)),
        ("I want to SPEAK TO A MANAGER now", ("speak to a manager",)),
        ("speak   to a\nmanager", ("speak to a manager",)),
        ("speak-to-a-manager", ("speak to a manager",)),
        ("we will take Legal Action!", ("legal action",)),
        ("speak to a managerial person", ()),
        ("illegal action", ()),
    ],
)
def test_phrases_of_several_words_allow_any_spacing_between_them(text: str, found: tuple[str, ...]):
    assert READER.read(text).phrases == found


@pytest.mark.parametrize(
    "text",
    [
        "my order was cancelled",  # inflections match only when listed ("cancellation" is)
        "cancels",
        "precancel",
        "non-refundable",
        "refunded yesterday",
        "refunds",
        "lawyers",
        "complained",
        "chargebacks",
        "worsted wool",
        "the worstcase",
        "legal actions",
        "cancel2",
        "cancelé",
    ],
)
def test_phrases_do_not_match_inside_other_words(text: str):
    assert READER.read(text).phrases == ()


def test_complain_and_complaint_and_cancel_and_cancellation_are_told_apart():
    assert READER.read("I complain").phrases == ("complain",)
    assert READER.read("a complaint").phrases == ("complaint",)
    assert READER.read("the cancellation").phrases == ("cancellation",)


def test_phrases_are_listed_once_in_order_of_appearance_as_configured():
    reader = MoodReader(["Refund", "cancel", "LAWYER", "refund"], upset_below=-0.5)
    mood = reader.read("My lawyer says: cancel it. Cancel it and refund me! REFUND!")
    assert mood.phrases == ("LAWYER", "cancel", "Refund")


def test_blank_and_punctuation_only_phrases_are_ignored():
    reader = MoodReader(["", "  ", "!!!", "refund"], upset_below=-0.5)
    assert reader.read("!!! refund !!!").phrases == ("refund",)
    assert reader.read("!!!").phrases == ()


def test_emoji_and_other_scripts_can_be_phrases():
    reader = MoodReader(["😡", "réclamation", "退款", "ביטול"], upset_below=-0.5)
    assert reader.read("so 😡😡").phrases == ("😡",)
    assert reader.read("RÉCLAMATION officielle").phrases == ("réclamation",)
    assert reader.read("我要退款").phrases == ("退款",)  # no spaces between Chinese words
    assert reader.read("אני רוצה ביטול!").phrases == ("ביטול",)
    assert reader.read("reclamation").phrases == ()  # accents count


def test_a_phrase_alone_makes_a_friendly_message_upset():
    mood = READER.read("Could I get a refund please? Thanks!")
    assert mood.score > 0.05
    assert mood.phrases == ("refund",)
    assert mood.upset and mood.label == "upset"


# --- the threshold ---------------------------------------------------------------------------------

ANGRY = "This is terrible service, I hate it"


def test_upset_means_strictly_below_the_threshold():
    score = PLAIN.read(ANGRY).score
    assert not MoodReader([], upset_below=score).read(ANGRY).upset
    assert MoodReader([], upset_below=math.nextafter(score, 1)).read(ANGRY).upset
    below = MoodReader([], upset_below=score).read(ANGRY)
    assert below.label == "negative"


def test_the_threshold_comes_from_the_policy():
    strict = MoodReader.from_policy(Complaints(upset_below=-0.9, phrases=[]))
    lenient = MoodReader.from_policy(Complaints(upset_below=0, phrases=[]))
    text = "I'm really disappointed, it broke again"
    assert not strict.read(text).upset and strict.read(text).label == "negative"
    assert lenient.read(text).upset
    assert strict.phrases == () and strict.upset_below == -0.9


@pytest.mark.parametrize("threshold", [-1.5, 1.5, math.nan])
def test_a_threshold_outside_the_score_range_is_refused(threshold: float):
    with pytest.raises(ValueError, match="upset_below"):
        MoodReader([], upset_below=threshold)


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (0.9, "positive"),
        (0.05, "positive"),
        (0.0499, "neutral"),
        (0.0, "neutral"),
        (-0.0499, "neutral"),
        (-0.05, "negative"),
        (-0.5, "negative"),
        (-0.5001, "upset"),
        (-1.0, "upset"),
    ],
)
def test_label_cut_offs(score: float, label: str):
    assert label_for(score) == label
    assert Mood(score).label == (label if label != "upset" else "negative")  # a Mood is upset only if told


# --- awkward text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "😡😡😡",
        "I love it 😍👍🏽👨‍👩‍👧",
        "هذه الخدمة سيئة جدا",  # Arabic, right to left
        "\u202b\u05e9\u05d9\u05e8\u05d5\u05ea \u05d2\u05e8\u05d5\u05e2\u202c refund",  # Hebrew, RTL embedding
        "\x00\x01\x1b[31mred\x1b[0m\x7f",
        "abc\ud800def",  # a stray surrogate
        "e\u0301\u0301\u0301 cancel",  # stacked combining marks
        "\ufeffBOM first",
        "a" * 50_000,
        "!" * 1000,
        "\n" * 1000,
    ],
)
def test_awkward_text_reads_without_error(text: str):
    mood = READER.read(text)
    assert -1 <= mood.score <= 1
    assert mood.label in LABELS


def test_a_huge_message_is_read_and_phrases_anywhere_in_it_count():
    filler = "The export job failed again with error 42 at step 7, log attached below. " * 1400
    text = "Hello team. " + filler + "I want to speak to a manager. " + filler + "Please fix it, I hate this."
    assert len(text) > 200_000
    mood = READER.read(text)
    assert mood.phrases == ("speak to a manager",)  # from the middle, which is not scored
    assert mood.upset
    assert -1 <= mood.score <= 1


def test_a_long_message_is_scored_by_its_start_and_end():
    middle = " lovely wonderful great " * 5000  # the middle alone would read as glowing
    text = "I hate this, it is awful. " + middle + " Terrible, I am furious."
    assert len(text) > 10 * (HEAD_CHARS + TAIL_CHARS)
    head_and_tail = PLAIN.read(text[:HEAD_CHARS] + text[-TAIL_CHARS:]).score
    assert PLAIN.read(text).score == pytest.approx(head_and_tail, abs=0.1)


def test_the_analyzer_is_built_once_per_reader():
    reader = MoodReader(["refund"], upset_below=-0.5)
    reader.read("fine")
    analyzer = reader._analyzer
    reader.read("not fine at all")
    assert reader._analyzer is analyzer


# --- the packet's trend line -----------------------------------------------------------------------


def test_no_scores_no_trend():
    assert trend([]) is None
    assert trend([math.nan]) is None


def test_a_single_message():
    assert trend([-0.8]) == "upset (-0.8, 1 message)"
    assert trend([0.42]) == "positive (0.4, 1 message)"
    assert trend([-0.01]) == "neutral (0.0, 1 message)"


def test_getting_worse():
    assert trend([-0.2, -0.4, -0.3, -0.8]) == "upset, getting worse (-0.2 → -0.8 over 4 messages)"
    assert trend([0.3, -0.2]) == "negative, getting worse (0.3 → -0.2 over 2 messages)"


def test_calmer_and_improving():
    assert trend([-0.7, -0.2, 0.1]) == "positive, calmer now (-0.7 → 0.1 over 3 messages)"
    assert trend([-0.7, 0.0]) == "neutral, calmer now (-0.7 → 0.0 over 2 messages)"
    assert trend([-0.9, -0.3]) == "negative, improving (-0.9 → -0.3 over 2 messages)"
    assert trend([0.1, 0.8]) == "positive, improving (0.1 → 0.8 over 2 messages)"


def test_steady():
    assert trend([0.0, 0.02]) == "steady, neutral (0.0, 2 messages)"
    assert trend([-0.7, -0.9, -0.8]) == "steady, upset (-0.8, 3 messages)"
    assert trend([0.5, -0.9, 0.6]) == "steady, positive (0.6, 3 messages)"  # first and latest decide


def test_the_trend_uses_the_given_threshold():
    assert trend([-0.6], upset_below=-0.7) == "negative (-0.6, 1 message)"
    assert trend([-0.6]) == "upset (-0.6, 1 message)"


def test_the_trend_is_short_and_deterministic():
    many = [-1.0] + [0.0] * 99_998 + [1.0]
    line = trend(many)
    assert line == "positive, calmer now (-1.0 → 1.0 over 100000 messages)"
    assert line == trend(many)
    worst = max(
        (trend([a / 10, b / 10] * 5000) or "" for a in range(-10, 11) for b in range(-10, 11)), key=len
    )
    assert len(worst) < 80


def test_trend_reads_moods_scores():
    texts = ["Where is my order #1234?", "Still nothing?", "This is terrible service, I hate it"]
    line = trend([READER.read(t).score for t in texts])
    assert line is not None and line.startswith("upset, getting worse (0.0 → -0.8 over 3 messages)")
