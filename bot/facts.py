"""Facts in what customers write: order, invoice and account numbers, emails, phones, amounts, dates and
product names. Rule-based (patterns from the policy file), deterministic, and fast enough for every packet."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PATTERNS: dict[str, str] = {
    "order": r"\border\s*(?:no\.?|number|#)?\s*[:#]?\s*([A-Z]{0,4}-?\d[\w-]{2,})",
    "invoice": r"\b(?:invoice|inv)\s*(?:no\.?|number|#)?\s*[:#]?\s*([A-Z]{0,4}-?\d[\w-]{1,})",
    "account": r"\baccount\s*(?:no\.?|number|id|#)?\s*[:#]?\s*([A-Z]{0,4}-?\d[\w-]{2,})",
    "email": r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",
    "phone": (
        r"(?<![\w+])(\+\d[\d ().-]{6,}\d)\b"
        r"|\b(?:phone|tel|mobile|cell)\b[^\d+]{0,12}(\+?\d[\d ().-]{6,}\d)\b"
    ),
    "amount": (
        r"(?:[$€£]|\b(?:USD|EUR|GBP)\s?)\d[\d,]*(?:\.\d{1,2})?"
        r"|\b\d[\d,]*(?:\.\d{1,2})?\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b"
    ),
    "date": (
        r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b"
        r"|\b\d{1,2}(?:st|nd|rd|th)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
        r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{1,2}(?:st|nd|rd|th)?\b"
    ),
}


_DIGIT = "\\d"
_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    DEFAULT_PATTERNS["order"]: ((_DIGIT,), ("order",)),
    DEFAULT_PATTERNS["invoice"]: ((_DIGIT,), ("inv",)),
    DEFAULT_PATTERNS["account"]: ((_DIGIT,), ("account",)),
    DEFAULT_PATTERNS["email"]: (("@",),),
    DEFAULT_PATTERNS["phone"]: ((_DIGIT,), ("+", "phone", "tel", "mobile", "cell")),
    DEFAULT_PATTERNS["amount"]: ((_DIGIT,), ("$", "€", "£", "usd", "eur", "gbp", "dollar", "pound")),
    DEFAULT_PATTERNS["date"]: (
        (_DIGIT,),
        ("-", "/", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
}
"""What a text must hold for a default pattern to match in it at all, so that most texts skip most
patterns (a reply without a digit skips all but the email's). Each group lists pieces of which every
match of the pattern holds one, in any case: a digit for its `\\d`, or a word each of its alternatives
spells out. A pattern of the policy's own needs nothing and always runs."""
_ASCII_DIGIT = re.compile("[0-9]").search


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str
    value: str


class FactFinder:
    """Finds facts with named patterns (the first group that matched, if any, is the value) and
    listed product names."""

    def __init__(self, patterns: dict[str, str], products: Iterable[str] = ()) -> None:
        self._patterns = {kind: re.compile(pattern, re.IGNORECASE) for kind, pattern in patterns.items()}
        self._needs = [
            (kind, self._patterns[kind], tuple(frozenset(group) for group in _NEEDS.get(pattern, ())))
            for kind, pattern in patterns.items()
        ]
        pieces = {piece for groups in _NEEDS.values() for group in groups for piece in group} - {_DIGIT}
        self._pieces = tuple(sorted(pieces))
        digit_only = frozenset({_DIGIT})
        self._digitless_pieces = tuple(
            sorted(
                {
                    piece
                    for _, _, groups in self._needs
                    if digit_only not in groups
                    for g in groups
                    for piece in g
                }
                - {_DIGIT}
            )
        )
        """The pieces worth looking for in a text without a digit: those of patterns that need none."""
        # Another text is looked at with the pattern's own means: ignoring case there goes beyond
        # `str.lower` (a dotless or dotted capital I matches i), and `\d` beyond 0-9.
        self._searches = [(piece, re.compile(re.escape(piece), re.IGNORECASE).search) for piece in pieces]
        self._searches.append((_DIGIT, re.compile(_DIGIT).search))
        self._to_run: dict[frozenset[str], list[tuple[str, re.Pattern[str]]]] = {}
        self.prechecks = True
        """Whether a pattern is skipped in a text that lacks what it needs (`_NEEDS`); off only in tests
        that show it finds the same facts either way."""
        names = sorted({p.strip() for p in products if p.strip()}, key=len, reverse=True)
        self._products = (
            re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
            if names
            else None
        )
        self._canonical = {n.lower(): n for n in names}

    def find(self, texts: Iterable[str]) -> list[Fact]:
        """Every distinct fact, in the order it was first mentioned."""
        found: dict[tuple[str, str], Fact] = {}
        for text in texts:
            for fact in self._in(text):
                found.setdefault((fact.kind, fact.value.lower()), fact)
        return list(found.values())

    def _in(self, text: str) -> list[Fact]:
        hits: list[tuple[int, Fact]] = []
        for kind, pattern in self._patterns.items() if not self.prechecks else self._worth_running(text):
            for match in pattern.finditer(text):
                value = next((g for g in match.groups() if g), match.group(0)).strip(" .,;:()")
                if value:
                    hits.append((match.start(), Fact(kind, value)))
        if self._products is not None:
            for match in self._products.finditer(text):
                hits.append((match.start(), Fact("product", self._canonical[match.group(0).lower()])))
        hits.sort(key=lambda hit: hit[0])
        return [fact for _, fact in hits]

    def _worth_running(self, text: str) -> list[tuple[str, re.Pattern[str]]]:
        """The patterns that may match in `text`: those whose every group of needed pieces it holds one of
        (an ASCII text is looked at lowercased: there that is what ignoring case means)."""
        if text.isascii():
            lowered = text.lower()
            if _ASCII_DIGIT(lowered):
                held = {piece for piece in self._pieces if piece in lowered}
                held.add(_DIGIT)
            else:
                held = {piece for piece in self._digitless_pieces if piece in lowered}
        else:
            held = {piece for piece, search in self._searches if search(text)}
        key = frozenset(held)
        found = self._to_run.get(key)
        if found is None:
            if len(self._to_run) >= 4096:  # kept for the few mixes of pieces texts really hold
                self._to_run.clear()
            found = self._to_run[key] = [
                (kind, pattern)
                for kind, pattern, groups in self._needs
                if all(not group.isdisjoint(key) for group in groups)
            ]
        return found


def describe(facts: list[Fact], limit: int = 20) -> str:
    """One line for a packet: `order A-1234 · email dana@example.com · amount €40`."""
    shown = " · ".join(f"{fact.kind} {fact.value}" for fact in facts[:limit])
    more = f" · and {len(facts) - limit} more" if len(facts) > limit else ""
    return shown + more
