"""Text hygiene: what is stored and what is echoed."""

from __future__ import annotations

import pytest

from bot.messages import InternalText, StaffMessage, ToAgents
from bot.text import WORD_JOINER, clean, defuse_mentions


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("a\r\nb\rc", "a\nb\nc"),
        ("nul\x00byte", "nulbyte"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("c1\x85\x9bcontrols", "c1controls"),
        ("\u202eevil\u202c \u2066iso\u2069", "evil iso"),
        ("lone \ud83d surrogate", "lone \ufffd surrogate"),
        ("tabs\tand\nnewlines stay", "tabs\tand\nnewlines stay"),
        ("مرحبا 👋🏽 שלום", "مرحبا 👋🏽 שלום"),
    ],
)
def test_clean_keeps_what_people_wrote_and_drops_what_breaks_screens_and_databases(raw, stored):
    assert clean(raw) == stored
    clean(raw).encode("utf-8")


@pytest.mark.parametrize(
    "mention",
    ["@everyone", "@here", "@channel", "@everyone123", "<!channel>", "<!here|here>", "<!subteam^S1>"],
)
def test_mass_mentions_are_inert(mention):
    defused = defuse_mentions(f"hey {mention} look")
    assert "<!" not in defused
    assert f"@{WORD_JOINER}" in defused


def test_staff_messages_defuse_their_parts_at_construction():
    message = StaffMessage(ToAgents(1), ("relay: @everyone ", InternalText("note <!here>")))
    assert all("@everyone" not in str(p) for p in message.parts if isinstance(p, str))
    internal = next(p for p in message.parts if isinstance(p, InternalText))
    assert "<!here>" not in internal.hidden
