"""Satisfaction surveys on Discord, over the wire: the survey arrives in the customer's private thread (or
DM) with a row of rating buttons; a click is a MESSAGE_COMPONENT interaction built by the local fake of
Discord (`discord_fake.py`) in Discord's shape, parsed by discord.py and run by the real adapter on a real
Desk and SQLite database (test_discord.py's harness); everything the bot sends is read back from the
fake's record of REST calls.

A click is acknowledged at once as a deferred update of the survey message (callback type 6); once the
desk took the rating, the survey message is edited (PATCH @original) to show it without buttons. A refusal
is an ephemeral follow-up to whoever clicked. The packaged policy applies: an alert to the support team's
lead (`ana`, Ana on Discord) at 2 or below.
"""

from __future__ import annotations

from typing import Any

import test_discord
from discord_fake import EPHEMERAL, Call
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_discord import ANA, BEN, CARL, DANA, Discord, Opened, StartDiscord, _database_locked

from bot.domain import Status, SurveyState
from storage.models import SurveyRow

# test_discord's harness (pytest finds fixtures by these names)
fake = test_discord.fake
discord_env = test_discord.discord_env
start_discord = test_discord.start_discord
dc = test_discord.dc

ASK = "how did we do with #1? Please rate us from 1 (poor) to 5 (excellent)"
THANKS = "Thank you, Dana! If you'd like to tell us more, just reply here; we read every word."
CLOSED = "but that survey has closed"
DEFERRED_UPDATE = 6


def rating_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components") or [] for c in row.get("components") or []]


async def resolved(dc: Discord) -> tuple[Opened, Call]:
    """Dana's ticket #1, resolved by Ana with the card's button: the ticket and the survey as posted."""
    opened = await dc.open_ticket()
    dc.click(ANA, opened.card_id, "relaydesk:resolve:1")
    survey = await survey_in(dc, opened.thread_id)
    return opened, survey


async def survey_in(dc: Discord, channel_id: int) -> Call:
    found = await dc.fake.wait_for(
        lambda: [c for c in dc.fake.posts(channel_id) if ASK in c.content], "the survey"
    )
    return found[0]


async def stored_survey(dc: Discord) -> SurveyRow:
    [row] = await dc.scalars(select(SurveyRow).where(SurveyRow.ticket_number == 1))
    return row


def texts(dc: Discord, channel_id: int) -> list[str]:
    return dc.fake.texts(channel_id)


async def test_the_survey_arrives_in_the_private_thread_with_five_persistent_buttons(dc: Discord) -> None:
    opened, survey = await resolved(dc)

    assert survey.content.startswith("One quick question, Dana:")
    [row] = survey.json["components"]
    assert row["type"] == 1
    buttons = row["components"]
    assert [b["label"] for b in buttons] == ["1", "2", "3", "4", "5"]
    assert [b["custom_id"] for b in buttons] == [f"relaydesk:rate:1:{n}" for n in range(1, 6)]
    assert all(b["type"] == 2 and b["style"] == 2 for b in buttons)
    assert survey.json["allowed_mentions"] == {"parse": []}, "no pings, as everything the bot sends"
    told = dc.fake.posts(opened.thread_id)[-2]
    assert "We've marked #1 as resolved" in told.content and not told.json.get("components")
    assert (await stored_survey(dc)).state is SurveyState.OPEN


async def test_a_click_defers_rates_the_ticket_and_shows_the_rating_without_buttons(dc: Discord) -> None:
    opened, survey = await resolved(dc)
    await dc.settle()
    survey_id = int(survey.answer["id"])
    mark = len(dc.fake.calls)

    click = dc.click(DANA, survey_id, "relaydesk:rate:1:4")

    [edit] = await dc.fake.wait_for(lambda: dc.fake.edits(click), "the survey showing the rating")
    first = dc.fake.calls[mark]
    assert first.path.endswith("/callback") and first.json["type"] == DEFERRED_UPDATE, dc.fake.transcript()
    assert edit.json["components"] == [], "the buttons are gone"
    assert edit.json["content"] == f"{survey.content}\n\nYour rating: ★★★★☆ 4/5"
    shown = dc.fake.messages[survey_id]
    assert rating_buttons(shown) == [] and shown["content"].endswith("Your rating: ★★★★☆ 4/5")

    await dc.fake.wait_for(lambda: THANKS in texts(dc, opened.thread_id), "the thanks in the thread")
    await dc.fake.wait_for(
        lambda: "Dana Whitaker rated #1: 4/5." in texts(dc, opened.card_id), "the rating in the staff thread"
    )
    row = await stored_survey(dc)
    assert (row.state, row.rating) == (SurveyState.RATED, 4)
    assert (await dc.ticket(1)).status is Status.RESOLVED
    await dc.settle()
    assert dc.fake.followups(click) == [], "nothing private to say: the edit is the answer"

    dc.say(opened.thread_id, DANA, "Quick and friendly!")
    comment = "#1 · Dana Whitaker's comment (rated 4/5): Quick and friendly!"
    await dc.fake.wait_for(lambda: comment in texts(dc, opened.card_id), "the comment forwarded")
    assert (await stored_survey(dc)).comment == "Quick and friendly!"


async def test_a_low_rating_alerts_the_lead_by_dm_and_offers_a_reopen(dc: Discord) -> None:
    opened, survey = await resolved(dc)
    dc.click(DANA, int(survey.answer["id"]), "relaydesk:rate:1:2")

    [alert] = await dc.fake.wait_for(
        lambda: [t for t in texts(dc, dc.fake.dm_channel(ANA)) if t.startswith("Low rating")], "the alert"
    )
    assert alert.startswith("Low rating: Dana Whitaker rated #1 2/5.")
    [sorry] = await dc.fake.wait_for(
        lambda: [t for t in texts(dc, opened.thread_id) if t.startswith("I'm sorry")], "the apology"
    )
    assert '"reopen"' in sorry
    await dc.settle()
    assert not any("Low rating" in t for t in texts(dc, opened.thread_id))


async def test_a_click_by_someone_else_is_refused_privately_and_changes_nothing(dc: Discord) -> None:
    _, survey = await resolved(dc)
    await dc.settle()
    survey_id = int(survey.answer["id"])
    before, posts = await dc.snapshot(), len(dc.fake.posts())

    for who in (ANA, CARL):  # the agent in the thread, and another customer
        click = dc.click(who, survey_id, "relaydesk:rate:1:1")
        [refusal] = await dc.wait_followups(click, "the refusal")
        assert CLOSED in refusal.content and refusal.flags & EPHEMERAL
        assert dc.fake.callbacks(click)[0].json["type"] == DEFERRED_UPDATE
        await dc.settle()
        assert dc.fake.edits(click) == []

    assert await dc.snapshot() == before and len(dc.fake.posts()) == posts
    assert len(rating_buttons(dc.fake.messages[survey_id])) == 5, "Dana can still answer"
    row = await stored_survey(dc)
    assert (row.state, row.rating) == (SurveyState.OPEN, None)


async def test_a_click_on_a_withdrawn_survey_is_refused_privately(dc: Discord) -> None:
    opened, survey = await resolved(dc)
    dc.say(opened.thread_id, DANA, "Actually, could you resend the tracking link?")
    await dc.eventually(lambda: _ticket_is(dc, Status.OPEN), "the ticket reopened")

    click = dc.click(DANA, int(survey.answer["id"]), "relaydesk:rate:1:5")
    [refusal] = await dc.wait_followups(click, "the refusal")
    assert refusal.content.startswith("Thanks, Dana, but that survey has closed.")
    assert refusal.flags & EPHEMERAL
    assert (await stored_survey(dc)).state is SurveyState.WITHDRAWN


async def _ticket_is(dc: Discord, status: Status) -> bool:
    return (await dc.ticket(1)).status is status


async def test_a_click_is_deferred_before_any_database_work(dc: Discord, sqlite_url: str) -> None:
    _, survey = await resolved(dc)
    await dc.settle()
    mark = len(dc.fake.calls)
    with _database_locked(sqlite_url):
        click = dc.click(DANA, int(survey.answer["id"]), "relaydesk:rate:1:5")
        await dc.fake.wait_for(lambda: dc.fake.callbacks(click), "the deferral, with the database locked", 5)
    first = dc.fake.calls[mark]
    assert first.path == f"/interactions/{click['id']}/{click['token']}/callback"
    assert first.json["type"] == DEFERRED_UPDATE
    await dc.fake.wait_for(lambda: dc.fake.edits(click), "the rating shown once the database is free")
    assert (await stored_survey(dc)).rating == 5


async def test_survey_buttons_posted_before_a_restart_still_work(
    dc: Discord, start_discord: StartDiscord, sqlite_engine: AsyncEngine
) -> None:
    opened, survey = await resolved(dc)
    await dc.close()

    restarted = await start_discord(sqlite_engine)
    click = restarted.click(DANA, int(survey.answer["id"]), "relaydesk:rate:1:5")
    await restarted.fake.wait_for(lambda: restarted.fake.edits(click), "the rating shown")
    await restarted.fake.wait_for(lambda: THANKS in texts(restarted, opened.thread_id), "the thanks")
    assert (await stored_survey(restarted)).rating == 5
    restarted.assert_no_errors_logged()


async def test_a_survey_by_dm_carries_the_buttons_and_a_click_there_counts(dc: Discord) -> None:
    dm = dc.fake.dm_channel(DANA)
    dc.say(dm, DANA, "Hi, my order A-1234 never arrived.")
    await dc.wait_posts("the greeting by DM", dm)
    resolve = dc.command(BEN, test_discord.AGENTS, "ticket", "resolve", ticket=1)
    await dc.wait_followups(resolve, "Ben's confirmation")
    survey = await survey_in(dc, dm)
    assert [b["custom_id"] for b in rating_buttons(survey.json)] == [
        f"relaydesk:rate:1:{n}" for n in range(1, 6)
    ]

    click = dc.click(DANA, int(survey.answer["id"]), "relaydesk:rate:1:3")
    await dc.fake.wait_for(lambda: dc.fake.edits(click), "the rating shown")
    await dc.fake.wait_for(lambda: THANKS in texts(dc, dm), "the thanks by DM")
    row = await stored_survey(dc)
    assert (row.state, row.rating) == (SurveyState.RATED, 3)
