"""`/ticket stats` on Slack and on Discord, over the wire.

The figures and their chart are the core's (`test_stats.py`); here they travel as each platform takes
them. On Slack a signed slash command goes to the real adapter (`test_slack.py`'s harness), the text comes
back ephemerally on the command's response_url and the PNG is uploaded through the local fake's
files.getUploadURLExternal, upload URL and files.completeUploadExternal into the agent's DM. On Discord
the `/ticket stats` subcommand is built by the local fake in Discord's shape and parsed by discord.py
(`test_discord.py`'s harness), and the answer is one ephemeral follow-up carrying the text and the PNG.

Both harnesses run here on SQLite and on PostgreSQL (with TEST_DATABASE_URL), so the figures are read
with each backend's queries.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import test_discord as discord_h
import test_slack as slack_h
from discord_fake import EPHEMERAL, FakeDiscord, UserOption
from discord_fake import Call as DiscordCall
from slack_fake import BOT_TOKEN, FakeSlack, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from test_discord import Discord
from test_slack import Slack

from bot.grammar import VERBS

CHART = "relaydesk-stats.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHART_SIZE = (1200, 800)
FILES_IN_DM = f"I've sent `{CHART}` to you in a direct message."
USAGE = f"Usage: {VERBS['stats'].usage}"


# Both harnesses' set-ups, whose fixtures pytest finds by these names. Each calls its platform's fake
# `fake`: here they are `slack_fake` and `discord_fake`, and each class below says which is its `fake`.
slack_fake = slack_h.fake
slack_env = slack_h.slack_env
start_slack = slack_h.start_slack
discord_fake = discord_h.fake
discord_env = discord_h.discord_env
start_discord = discord_h.start_discord


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height, as its first chunk (IHDR) gives them."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR", "IHDR comes first"
    return struct.unpack(">II", data[16:24])


# --- Slack ----------------------------------------------------------------------------------------


async def slash(slack: Slack, text: str, user: str, channel: str = slack_h.AGENTS) -> list[Response]:
    """`/ticket <text>` as Slack posts it; waits until the adapter's work is done and returns what came
    back on the command's response_url, each answer checked to be ephemeral."""
    key = await slack.command("/ticket", text, user, channel)
    await slack.settle()  # Bolt acknowledges before it works: the listener's task is running by now
    answers = slack.fake.responses_to(key)
    assert all(r.body.get("response_type") == "ephemeral" for r in answers), [r.body for r in answers]
    return answers


async def slack_week(slack: Slack) -> None:
    """Two tickets: Ana claims, answers and resolves Dana's; Ben answers Carl's, which stays open."""
    first = await slack.open_ticket()
    second = await slack.open_ticket(slack_h.CARL, "Hello, the printer in room 4 is on fire")
    await slash(slack, f"claim #{first.number}", slack_h.ANA)
    await slash(slack, f"reply #{first.number} A replacement ships today.", slack_h.ANA)
    await slash(slack, f"resolve #{first.number} sent a replacement", slack_h.ANA)
    await slash(slack, f"reply #{second.number} Someone is on the way.", slack_h.BEN)
    await slack.wait_posts("the survey", slack_h.SUPPORT, thread_ts=first.ts, count=4)
    await slack.settle()


@pytest.fixture
async def slack(
    start_slack: slack_h.StartSlack, engine: AsyncEngine, request: pytest.FixtureRequest
) -> AsyncIterator[Slack]:
    """test_slack's adapter (agents UANA and UBEN), on SQLite and on PostgreSQL."""
    harness = await start_slack(engine)
    yield harness
    await harness.close()  # before the engine goes
    if not harness.errors_expected and request.node.get_closest_marker("xfail") is None:
        harness.assert_no_errors_logged()


class TestSlack:
    @pytest.fixture
    def fake(self, slack_fake: FakeSlack) -> FakeSlack:
        return slack_fake

    async def test_the_figures_come_ephemerally_and_the_chart_is_uploaded_to_the_agents_dm(
        self, slack: Slack
    ) -> None:
        await slack_week(slack)
        posts = len(slack.fake.posts())

        text, pointer = await slash(slack, "stats", slack_h.ANA)

        assert text.text.startswith("Last 7 days: 2 opened, 1 resolved"), text.text
        assert "By agent:" in text.text and "• Ana: 1 resolved" in text.text
        assert pointer.text == FILES_IN_DM
        dm = f"D-{slack_h.ANA}"
        assert slack.fake.calls_to("conversations.open", users=slack_h.ANA), "the DM is opened for its id"
        [asked] = slack.fake.calls_to("files.getUploadURLExternal")
        [completed] = slack.fake.calls_to("files.completeUploadExternal")
        assert completed.get("channel_id") == dm and completed.token == BOT_TOKEN
        [chart] = slack.fake.files
        assert (chart.filename, chart.title, chart.channel, chart.thread_ts) == (CHART, CHART, dm, None)
        assert png_size(chart.content) == CHART_SIZE
        assert (asked.get("filename"), int(asked.get("length"))) == (CHART, len(chart.content))
        assert slack.fake.uploads_received == 1
        assert len(slack.fake.posts()) == posts, "the figures themselves are posted nowhere"

    async def test_one_agents_figures_over_thirty_days(self, slack: Slack) -> None:
        await slack_week(slack)

        text, pointer = await slash(slack, f"stats 30d <@{slack_h.BEN}|ben>", slack_h.ANA)

        assert text.text.startswith("Last 30 days · Ben: 1 opened, 0 resolved"), text.text
        assert pointer.text == FILES_IN_DM
        [chart] = slack.fake.files_in(f"D-{slack_h.ANA}")
        assert chart.filename == CHART and png_size(chart.content) == CHART_SIZE

    async def test_an_unknown_queue_is_refused_politely_and_nothing_is_uploaded(self, slack: Slack) -> None:
        await slack_week(slack)
        posts = len(slack.fake.posts())

        [answer] = await slash(slack, "stats nowhere", slack_h.ANA)

        assert answer.text.startswith("There's no queue called 'nowhere'. Queues: "), answer.text
        assert slack.fake.calls_to("files.getUploadURLExternal") == [] and slack.fake.files == []
        assert len(slack.fake.posts()) == posts

    async def test_a_customer_gets_the_customer_refusal(self, slack: Slack) -> None:
        await slack_week(slack)
        posts = len(slack.fake.posts())

        [answer] = await slash(slack, "stats", slack_h.CARL, channel="CGENERAL")

        assert answer.text.startswith("Sorry Carl, I didn't catch that."), answer.text
        assert "opened" not in answer.text and "Ticket" not in answer.text
        assert slack.fake.calls_to("files.getUploadURLExternal") == [] and slack.fake.files == []
        assert len(slack.fake.posts()) == posts


# --- Discord --------------------------------------------------------------------------------------


def files_of(call: DiscordCall) -> list[tuple[str, bytes]]:
    """The files a request carried, each checked against its description in payload_json."""
    described = {f"files[{a['id']}]": a["filename"] for a in call.json.get("attachments") or []}
    assert {f.field for f in call.files} == set(described), "every file part is described, and only those"
    return [(described[f.field], f.content) for f in call.files]


def stats(dc: Discord, user: int = discord_h.ANA, **options: Any) -> dict[str, Any]:
    """`/ticket stats` with these options, in the agents' channel (anyone else's: in #general)."""
    channel = discord_h.AGENTS if user in (discord_h.ANA, discord_h.BEN) else discord_h.GENERAL
    return dc.command(user, channel, "ticket", "stats", **options)


async def followups(dc: Discord, payload: dict[str, Any], what: str) -> list[DiscordCall]:
    """The interaction's deferred answer, once its work is done: each follow-up checked ephemeral."""
    await dc.wait_followups(payload, what)
    await dc.settle()
    [deferred] = dc.fake.callbacks(payload)
    assert deferred.json["type"] == 5 and deferred.flags & EPHEMERAL, deferred.body
    found = dc.fake.followups(payload)
    assert all(call.flags & EPHEMERAL for call in found), [call.body for call in found]
    return found


async def discord_week(dc: Discord) -> None:
    """Two tickets: Ana claims, answers and resolves Dana's; Ben answers Carl's, which stays open."""
    first = await dc.open_ticket()
    second = await dc.open_ticket(discord_h.CARL, "Hello, the printer in room 4 is on fire")
    ana, ben, agents = discord_h.ANA, discord_h.BEN, discord_h.AGENTS
    for user, verb, options in (
        (ana, "claim", {"ticket": first.number}),
        (ana, "reply", {"ticket": first.number, "text": "A replacement ships today."}),
        (ana, "resolve", {"ticket": first.number, "text": "sent a replacement"}),
        (ben, "reply", {"ticket": second.number, "text": "Someone is on the way."}),
    ):
        await followups(dc, dc.command(user, agents, "ticket", verb, **options), f"/ticket {verb}")
    await dc.wait_posts("the survey", first.thread_id, count=4)
    await dc.settle()


def the_chart(answer: DiscordCall) -> bytes:
    """The one file on a follow-up: the chart, as uploaded and as Discord stored it."""
    [(name, data)] = files_of(answer)
    [stored] = answer.answer["attachments"]
    assert (name, stored["filename"], stored["size"]) == (CHART, CHART, len(data))
    return data


@pytest.fixture
async def dc(
    start_discord: discord_h.StartDiscord, engine: AsyncEngine, request: pytest.FixtureRequest
) -> AsyncIterator[Discord]:
    """test_discord's adapter (Ana and Ben hold the agent role, Carl does not), on both backends."""
    harness = await start_discord(engine)
    yield harness
    await harness.close()  # before the engine goes
    if not harness.errors_expected and request.node.get_closest_marker("xfail") is None:
        harness.assert_no_errors_logged()


class TestDiscord:
    @pytest.fixture
    def fake(self, discord_fake: FakeDiscord) -> FakeDiscord:
        return discord_fake

    async def test_the_figures_and_the_chart_are_one_ephemeral_followup(self, dc: Discord) -> None:
        await discord_week(dc)
        posts = len(dc.fake.posts())

        [answer] = await followups(dc, stats(dc), "the figures")

        assert answer.content.startswith("Last 7 days: 2 opened, 1 resolved"), answer.content
        assert "By agent:" in answer.content and "• Ana: 1 resolved" in answer.content
        assert png_size(the_chart(answer)) == CHART_SIZE
        assert len(dc.fake.posts()) == posts, "nothing posted anywhere else"

    @pytest.mark.parametrize(
        ("options", "title"),
        [
            (
                {"period": "30d", "agent": UserOption(discord_h.BEN)},
                "Last 30 days · Ben: 1 opened, 0 resolved",
            ),
            ({"period": "today", "queue": "billing"}, "Last 24 hours · billing: 0 opened, 0 resolved"),
        ],
        ids=["an agent over 30 days", "a queue today"],
    )
    async def test_the_options_narrow_the_figures(
        self, dc: Discord, options: dict[str, Any], title: str
    ) -> None:
        await discord_week(dc)

        [answer] = await followups(dc, stats(dc, **options), "the figures")

        assert answer.content.startswith(title), answer.content
        assert png_size(the_chart(answer)) == CHART_SIZE

    async def test_an_agent_who_has_not_worked_a_ticket_yet_has_empty_figures(self, dc: Discord) -> None:
        await dc.open_ticket()
        await dc.settle()

        [answer] = await followups(dc, stats(dc, agent=UserOption(discord_h.BEN)), "Ben's figures")

        assert answer.content.startswith("Last 7 days · Ben: 0 opened, 0 resolved"), answer.content
        assert png_size(the_chart(answer)) == CHART_SIZE

    async def test_naming_someone_who_is_no_agent_is_refused_politely(self, dc: Discord) -> None:
        await discord_week(dc)
        posts = len(dc.fake.posts())

        [answer] = await followups(dc, stats(dc, agent=UserOption(discord_h.CARL)), "the refusal")

        assert answer.content.startswith("I couldn't find an agent called @"), answer.content
        assert not answer.files and len(dc.fake.posts()) == posts

    @pytest.mark.parametrize(
        ("period", "said"),
        [
            ("500d", "A period runs from 1h to 400d."),
            ("banana", "'banana' is not a period."),
        ],
        ids=["too long", "not a period"],
    )
    async def test_a_bad_period_is_answered_at_once_with_the_usage(
        self, dc: Discord, period: str, said: str
    ) -> None:
        await discord_week(dc)
        before, posts = await dc.snapshot(), len(dc.fake.posts())

        payload = stats(dc, period=period)

        reply = await dc.wait_callback(payload)
        await dc.settle()
        assert reply.json["type"] == 4 and reply.flags & EPHEMERAL, reply.body
        assert reply.content.startswith(said) and reply.content.endswith(USAGE), reply.content
        assert dc.fake.followups(payload) == [] and not reply.files
        assert await dc.snapshot() == before and len(dc.fake.posts()) == posts

    async def test_a_member_without_the_agent_role_is_refused_politely(self, dc: Discord) -> None:
        await discord_week(dc)
        posts = len(dc.fake.posts())

        [answer] = await followups(dc, stats(dc, discord_h.CARL), "the refusal")

        assert answer.content.startswith("Sorry Carl, I didn't catch that."), answer.content
        assert "opened" not in answer.content and not answer.files
        assert len(dc.fake.posts()) == posts
