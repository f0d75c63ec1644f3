"""Text hygiene for everything people type and everything the bot echoes."""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SLACK_BROADCAST = re.compile(r"<!(channel|here|everyone)(?:\|[^>]*)?>", re.IGNORECASE)
_SLACK_GROUP = re.compile(r"<!subteam\^[^>|]*(?:\|@?([^>]*))?>", re.IGNORECASE)
_DISCORD_ROLE = re.compile(r"<@&\d+>")
_AT_BROADCAST = re.compile(r"@(everyone|here|channel)", re.IGNORECASE)


def clean(text: str) -> str:
    """What we store: newlines normalised; control characters (NUL, terminal escapes, bidi overrides)
    removed; broken surrogates replaced, since no database or platform accepts them."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def defuse_mentions(text: str) -> str:
    """Make mass mentions inert on every platform while keeping them readable.

    `@everyone`, `@here`, `@channel`, Slack's `<!channel>`-style broadcasts and user groups, and Discord
    role mentions all become plain text with a word joiner after the `@`.
    """
    text = _SLACK_BROADCAST.sub(lambda m: f"@{WORD_JOINER}{m.group(1).lower()}", text)
    text = _SLACK_GROUP.sub(lambda m: f"@{WORD_JOINER}{m.group(1) or 'group'}", text)
    text = _DISCORD_ROLE.sub(f"@{WORD_JOINER}role", text)
    return _AT_BROADCAST.sub(lambda m: f"@{WORD_JOINER}{m.group(1)}", text)


def shorten(text: str, limit: int) -> str:
    """One line of at most `limit` characters, with an ellipsis when cut."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def first_line(text: str, limit: int) -> str:
    """A subject: the first non-empty line, shortened."""
    for line in text.splitlines():
        if line.strip():
            return shorten(line, limit)
    return shorten(text, limit)


def excerpt(text: str, limit: int = 1500) -> str:
    """A long text cut to `limit` characters, saying so; lines are kept."""
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f"… ({len(text) - limit:,} more characters)"
