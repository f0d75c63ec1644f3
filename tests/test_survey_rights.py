"""Surveys under data rights: an export holds the customer's ratings and comments; forgetting erases
the comments (their words) and keeps the ratings (anonymous statistics)."""

from __future__ import annotations

from fakes import START, agent, build_desk, customer

from bot import data_rights
from bot.clock import FakeClock
from bot.data_rights import ERASED

DANA, ANA = customer("Dana Scully"), agent("Ana Lima")
COMMENT = "Bob Mortimer from Flat 4 took the parcel, please tell your courier"


async def rated_and_commented():
    h = build_desk()
    await h.write(DANA, "My order A-1234 never arrived")
    await h.run(ANA, "/ticket resolve #1")
    await h.write(DANA, "2")
    await h.write(DANA, COMMENT)
    return h


async def test_the_export_holds_the_rating_and_the_comment():
    h = await rated_and_commented()
    data = await data_rights.export(h.store.uow, "slack:Udana", FakeClock(START))
    [survey] = data["tickets"][0]["surveys"]
    assert (survey["rating"], survey["comment"], survey["state"]) == (2, COMMENT, "rated")


async def test_forgetting_erases_the_comment_and_keeps_the_rating():
    h = await rated_and_commented()
    await data_rights.forget(h.store.uow, "slack:Udana", FakeClock(START), "operator")
    [survey] = h.store.surveys.values()
    assert (survey.rating, survey.comment) == (2, ERASED)
    assert not any("Mortimer" in str(row) for table in h.store.tables().values() for row in table.values())
