"""Satisfaction surveys on Slack, over the wire: the survey arrives in the customer's thread as Block Kit
with a button for each rating; a click is a signed `block_actions` request, as Slack sends it, to the
real adapter (test_slack.py's harness: settings from the environment, a Desk on SQLite), and everything
the adapter says goes to the local fake of Slack's Web API (`slack_fake.py`) or to a response_url on it.

The packaged policy applies: surveys after every resolution, an alert to the support team's lead (`ana`,
Ana on Slack) at 2 or below.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any
from uuid import uuid4

import test_slack
from slack_fake import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, Call
from sqlalchemy import select
from test_slack import AGENTS, ANA, BEN, CARL, DANA, SUPPORT, Opened, Slack, message

from bot.domain import EntryKind, Status, SurveyState
from storage.models import EntryRow, SurveyRow

# test_slack's harness and workspace (pytest finds fixtures by these names)
fake = test_slack.fake
slack_env = test_slack.slack_env
start_slack = test_slack.start_slack
slack = test_slack.slack

ASK = "how did we do with #1? Please rate us from 1 (poor) to 5 (excellent)"
THANKS = "Thank you, Dana! If you'd like to tell us more, just reply here; we read every word."
CLOSED = "but that survey has closed"


def blocks_of(call: Call) -> list[dict[str, Any]]:
    value = call.get("blocks")
    return json.loads(value) if isinstance(value, str) else list(value or [])


def buttons_of(call: Call) -> list[dict[str, Any]]:
    return [e for b in blocks_of(call) if b["type"] == "actions" for e in b["elements"]]


def survey_click(user: str, survey: Call, rating: int, response_url: str) -> dict[str, Any]:
    """A `block_actions` payload for a rating button on the survey message, as Slack sends it: the
    message as it stands (text, blocks, its thread), where it is, and a response_url."""
    [button] = [b for b in buttons_of(survey) if b["text"]["text"] == str(rating)]
    ts, channel = survey.answer["ts"], survey.get("channel")
    shown = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "text": survey.get("text"),
        "blocks": blocks_of(survey),
        "ts": ts,
        "thread_ts": survey.get("thread_ts"),
        "team": TEAM_ID,
    }
    action = {
        "action_id": button["action_id"],
        "block_id": next(b["block_id"] for b in blocks_of(survey) if b["type"] == "actions"),
        "text": button["text"],
        "value": button["value"],
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
            "thread_ts": survey.get("thread_ts"),
        },
        "trigger_id": "trigger-" + uuid4().hex,
        "team": {"id": TEAM_ID, "domain": "relaydesk-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "support"},
        "message": shown,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


async def resolved(slack: Slack) -> tuple[Opened, Call]:
    """Dana's ticket #1, resolved by Ana: returns it and the survey as posted in its thread."""
    opened = await slack.open_ticket()
    await slack.command("/ticket", "resolve #1", ANA)
    survey = (
        await slack.fake.wait_for(
            lambda: [c for c in slack.fake.posts(SUPPORT, thread_ts=opened.ts) if ASK in c.get("text", "")],
            "the survey",
        )
    )[0]
    return opened, survey


async def stored_survey(slack: Slack) -> SurveyRow:
    [row] = await slack.scalars(select(SurveyRow).where(SurveyRow.ticket_number == 1))
    return row


async def test_the_survey_arrives_in_the_customers_thread_with_a_button_for_each_rating(slack: Slack) -> None:
    opened, survey = await resolved(slack)

    assert survey.get("channel") == SUPPORT and survey.get("thread_ts") == opened.ts
    text = survey.get("text")
    assert text.startswith("One quick question, Dana:"), "the text stays: notifications and fallback"
    section, actions = blocks_of(survey)
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    assert actions["type"] == "actions"
    buttons = buttons_of(survey)
    assert [b["text"]["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
    assert [b["action_id"] for b in buttons] == [f"survey_rate_{n}" for n in range(1, 6)]
    assert [b["value"] for b in buttons] == [f"1:{n}" for n in range(1, 6)]
    resolved_told = slack.fake.posts(SUPPORT, thread_ts=opened.ts)[-2]
    assert "We've marked #1 as resolved" in resolved_told.get("text") and not resolved_told.get("blocks")
    assert (await stored_survey(slack)).state is SurveyState.OPEN


async def test_a_click_rates_the_ticket_thanks_the_customer_and_shows_the_rating(slack: Slack) -> None:
    opened, survey = await resolved(slack)
    key = slack.response_key()

    status, body = await slack.interact(survey_click(DANA, survey, 4, slack.fake.response_url(key)))
    assert status == 200 and body == "", "acknowledged at once"

    await slack.wait_posts("the thanks", SUPPORT, thread_ts=opened.ts, text=THANKS)
    rated = "Dana Whitaker rated #1: 4/5."
    await slack.wait_posts("the rating in the staff thread", AGENTS, thread_ts=opened.card_ts, text=rated)
    [update] = await slack.fake.wait_for(lambda: slack.fake.calls_to("chat.update"), "the survey updated")
    assert (update.get("channel"), update.get("ts")) == (SUPPORT, survey.answer["ts"])
    assert buttons_of(update) == [], "the buttons are gone"
    section, shown = blocks_of(update)
    assert section["text"]["text"] == survey.get("text")
    assert shown == {"type": "context", "elements": [{"type": "mrkdwn", "text": "Your rating: ★★★★☆ 4/5"}]}
    assert update.get("text").startswith(survey.get("text"))

    row = await stored_survey(slack)
    assert (row.state, row.rating, row.comment) == (SurveyState.RATED, 4, None)
    assert (await slack.ticket(1)).status is Status.RESOLVED
    await slack.settle()
    assert slack.fake.responses_to(key) == [], "nothing private to say"
    assert slack.fake.posts(ANA) == [], "a good rating alerts nobody"

    await slack.event(message(SUPPORT, DANA, "Quick and friendly!", thread_ts=opened.ts))
    comment = "#1 · Dana Whitaker's comment (rated 4/5): Quick and friendly!"
    await slack.wait_posts("the comment forwarded", AGENTS, thread_ts=opened.card_ts, text=comment)
    assert (await stored_survey(slack)).comment == "Quick and friendly!"
    assert (await slack.ticket(1)).status is Status.RESOLVED


async def test_a_low_rating_by_button_alerts_the_lead_by_dm_and_offers_a_reopen(slack: Slack) -> None:
    opened, survey = await resolved(slack)
    await slack.interact(survey_click(DANA, survey, 1, slack.fake.response_url(slack.response_key())))

    [alert] = await slack.wait_posts("the lead's alert", ANA)
    assert alert.get("text").startswith("Low rating: Dana Whitaker rated #1 1/5.")
    [sorry] = await slack.fake.wait_for(
        lambda: [t for t in slack.fake.texts(SUPPORT, thread_ts=opened.ts) if t.startswith("I'm sorry")],
        "the apology in the customer's thread",
    )
    assert sorry.startswith("I'm sorry we let you down, Dana.") and '"reopen"' in sorry
    await slack.settle()
    assert "Low rating" not in "\n".join(slack.fake.texts(SUPPORT)), "the alert is for the lead only"

    await slack.event(message(SUPPORT, DANA, "reopen", thread_ts=opened.ts))
    await slack.eventually(lambda: _status_is(slack, Status.OPEN), "the ticket reopened by her word")


async def _status_is(slack: Slack, status: Status) -> bool:
    return (await slack.ticket(1)).status is status


async def test_a_click_by_someone_else_is_refused_privately_and_changes_nothing(slack: Slack) -> None:
    _, survey = await resolved(slack)
    await slack.settle()
    before, posts = await slack.snapshot(), len(slack.fake.posts())

    for who in (CARL, BEN):  # another customer in the channel, and an agent
        key = slack.response_key()
        await slack.interact(survey_click(who, survey, 1, slack.fake.response_url(key)))
        [refusal] = await slack.fake.wait_for(partial(slack.fake.responses_to, key), "the refusal")
        assert CLOSED in refusal.text
        assert refusal.body["response_type"] == "ephemeral" and refusal.body["replace_original"] is False

    await slack.settle()
    assert await slack.snapshot() == before and len(slack.fake.posts()) == posts
    assert slack.fake.calls_to("chat.update") == [], "the survey keeps its buttons for Dana"
    row = await stored_survey(slack)
    assert (row.state, row.rating) == (SurveyState.OPEN, None)


async def test_a_click_after_the_survey_was_answered_is_refused_privately(slack: Slack) -> None:
    opened, survey = await resolved(slack)
    await slack.interact(survey_click(DANA, survey, 5, slack.fake.response_url("first")))
    await slack.wait_posts("the thanks", SUPPORT, thread_ts=opened.ts, text=THANKS)
    await slack.event(message(SUPPORT, DANA, "Lovely", thread_ts=opened.ts))
    await slack.eventually(lambda: _commented(slack), "the comment stored")
    await slack.settle()
    posts = len(slack.fake.posts())

    await slack.interact(survey_click(DANA, survey, 2, slack.fake.response_url("again")))
    [refusal] = await slack.fake.wait_for(lambda: slack.fake.responses_to("again"), "the refusal")
    assert refusal.text == "Thanks, Dana, we already have your rating."
    await slack.settle()
    assert len(slack.fake.posts()) == posts
    assert (await stored_survey(slack)).rating == 5


async def _commented(slack: Slack) -> bool:
    return (await stored_survey(slack)).comment is not None


async def test_a_rating_typed_in_the_thread_counts_as_a_click_would(slack: Slack) -> None:
    opened, _ = await resolved(slack)
    await slack.event(message(SUPPORT, DANA, "4/5", thread_ts=opened.ts))
    await slack.wait_posts("the thanks", SUPPORT, thread_ts=opened.ts, text=THANKS)
    row = await stored_survey(slack)
    assert (row.state, row.rating) == (SurveyState.RATED, 4)
    entries = await slack.scalars(select(EntryRow.body).where(EntryRow.kind == EntryKind.CUSTOMER))
    assert entries[-1] == "4/5"
    assert (await slack.ticket(1)).status is Status.RESOLVED
