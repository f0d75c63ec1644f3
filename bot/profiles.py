"""Customer profile rules: what each field accepts, and how two profiles of one person become one."""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.domain import Customer, TicketKind
from bot.text import shorten

MERGED_NAME = "merged customer"
ADDRESS_LIMIT = 80
ORGANISATION_LIMIT = 200
TAG_LIMIT = 30
TAGS_PER_CUSTOMER = 20
_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TAG = re.compile(r"[\w-]+")
_KINDS = {
    "external": TicketKind.EXTERNAL,
    "customer": TicketKind.EXTERNAL,
    "internal": TicketKind.INTERNAL,
    "colleague": TicketKind.INTERNAL,
}


class ProfileValueError(ValueError):
    """A value a profile field does not take; the message says what it does take."""


def set_field(customer: Customer, field: str, value: str) -> str:
    """Set (or, with an empty value, clear) one profile field; returns the new value as shown."""
    value = " ".join(value.split())
    if field == "address":
        customer.address_as = shorten(value, ADDRESS_LIMIT) or None
        return customer.address_as or "cleared"
    if field == "org":
        customer.organisation = shorten(value, ORGANISATION_LIMIT) or None
        return customer.organisation or "cleared"
    if field == "timezone":
        customer.timezone = timezone_name(value) if value else None
        return customer.timezone or "cleared"
    if field == "email":
        if value and not _EMAIL.fullmatch(value):
            raise ProfileValueError(f"'{shorten(value, 60)}' is not an email address, e.g. dana@example.com")
        customer.email = value.lower() or None
        customer.email_verified = False
        return customer.email or "cleared"
    if field == "tags":
        customer.tags = tags(value)
        return ", ".join(customer.tags) or "cleared"
    if field == "kind":
        kind = _KINDS.get(value.lower())
        if kind is None:
            raise ProfileValueError("a customer's kind is external (a customer) or internal (a colleague)")
        customer.kind = kind
        return str(kind)
    raise ProfileValueError(f"a profile has no field '{shorten(field, 30)}'")


def timezone_name(value: str) -> str:
    """The IANA name of a timezone typed in any case (`europe/berlin` → `Europe/Berlin`)."""
    name = _zones().get(value.strip().lower())
    if name is None:
        raise ProfileValueError(
            f"'{shorten(value, 40)}' is not a timezone I know; use an IANA name such as Europe/Berlin "
            "or America/New_York"
        )
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise ProfileValueError(f"the timezone {name} is not installed here") from None
    return name


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()} | {"utc": "UTC"}


def tags(value: str) -> tuple[str, ...]:
    """Tags from `vip, beta-tester` or `vip beta-tester`: lower case, each once, in the order given."""
    found: list[str] = []
    for tag in _TAG.findall(value.lower()):
        tag = tag[:TAG_LIMIT]
        if tag not in found:
            found.append(tag)
    if len(found) > TAGS_PER_CUSTOMER:
        raise ProfileValueError(f"a customer takes at most {TAGS_PER_CUSTOMER} tags")
    return tuple(found)


def older_first(first: Customer, second: Customer) -> tuple[Customer, Customer]:
    """Which profile stays when two are linked (the older), and which is folded into it."""
    assert first.id is not None and second.id is not None
    return (first, second) if first.id < second.id else (second, first)


def fold(keep: Customer, gone: Customer) -> None:
    """Fold one profile into another: the kept profile's values win, the other's fill its gaps, tags
    join, and a verified email beats one typed in. The folded profile keeps nothing personal."""
    keep.address_as = keep.address_as or gone.address_as
    keep.timezone = keep.timezone or gone.timezone
    keep.organisation = keep.organisation or gone.organisation
    if gone.email and (keep.email is None or (gone.email_verified and not keep.email_verified)):
        keep.email, keep.email_verified = gone.email, gone.email_verified
    keep.tags = tuple(dict.fromkeys(keep.tags + gone.tags))[:TAGS_PER_CUSTOMER]
    if gone.blocked_until is not None and (
        keep.blocked_until is None or gone.blocked_until > keep.blocked_until
    ):
        keep.blocked_until, keep.block_told = (
            gone.blocked_until,
            gone.block_told,
        )  # a block follows the person
    assert keep.id is not None
    gone.merged_into = keep.id
    gone.display_name = MERGED_NAME
    gone.address_as = gone.timezone = gone.organisation = gone.email = None
    gone.email_verified = False
    gone.tags = ()
