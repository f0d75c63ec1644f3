"""Files for staff, and verified emails, on Slack, over the wire.

The real adapter (as `test_slack.py` builds it: settings from the environment, a Desk on SQLite) delivers
staff messages with attachments; the local fake of Slack's Web API (`slack_fake.py`) receives
files.getUploadURLExternal, the POST of each file's bytes to the upload URL it handed out (a real HTTP
request to the fake's own server) and files.completeUploadExternal, and keeps what was shared where.
Ephemeral answers go to a real response_url on the fake through Bolt's own `AsyncRespond`.

Emails come from users.info (`profile.email`, which Slack gives apps with users:read.email) and travel
with the person into the desk, which links identities with the same verified email.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import test_slack
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_fake import BOT_TOKEN, FakeSlack
from sqlalchemy import select
from test_slack import AGENTS, ANA, BEN, CARL, DANA, FIRST, SUPPORT, Slack, message

from bot.commands import Actor
from bot.domain import Role
from bot.messages import Attachment, Person, StaffKind, StaffMessage, ToAgent, ToAgents
from storage.models import CustomerRow, IdentityRow

MARKDOWN = "# Ticket #12\n\nDana: my order A-1234 never arrived\nAna: on it — ünïcödé ✓\n"
JSON = '{"ticket": 12, "status": "resolved"}\n'
FILES = (
    Attachment("ticket-12.md", MARKDOWN, "text/markdown"),
    Attachment("ticket-12.json", JSON, "application/json"),
)
ANA_PERSON = Person("slack", ANA, "Ana")

# test_slack's harness, with this module's `fake` workspace (pytest finds fixtures by these names)
slack_env = test_slack.slack_env
start_slack = test_slack.start_slack
slack = test_slack.slack


def transcript(to: Person = ANA_PERSON, files: tuple[Attachment, ...] = FILES) -> StaffMessage:
    return StaffMessage(ToAgent(to), ("Transcript of #12",), StaffKind.INFO, attachments=files)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """test_slack's workspace, where Dana has a second account with the same (verified) email, Eve's
    email is not confirmed, and Carl's profile shows none."""
    workspace = FakeSlack()
    workspace.add_user(DANA, real_name="Dana Whitaker", name="dana", email="dana@example.com")
    workspace.add_user("UDANA2", real_name="Dana Whitaker", name="dana.w", email="Dana@Example.com")
    workspace.add_user(ANA, display_name="Ana", real_name="Ana Lima", email="ana@relaydesk.test")
    workspace.add_user(BEN, display_name="Ben", real_name="Ben Okafor", email="ben@relaydesk.test")
    workspace.add_user(CARL, display_name="Carl", real_name="Carl Jensen")
    workspace.add_user("UEVE", display_name="Eve", email="eve@example.com", email_confirmed=False)
    await workspace.start()
    try:
        yield workspace
    finally:
        await workspace.stop()


def respond_for(slack: Slack) -> tuple[str, AsyncRespond]:
    """A response_url on the fake, as a slash command or button would carry, and Bolt's respond()."""
    key = slack.response_key()
    return key, AsyncRespond(response_url=slack.fake.response_url(key))


# --- files --------------------------------------------------------------------------------------


async def test_a_transcript_for_an_agent_is_posted_and_its_files_uploaded_to_their_dm(slack: Slack) -> None:
    await slack.adapter.deliver([transcript()])

    fake = slack.fake
    assert fake.texts(ANA) == ["Transcript of #12"]
    [opened] = fake.calls_to("conversations.open")
    assert opened.get("users") == ANA
    shared = fake.files_in(f"D-{ANA}")
    assert [(f.filename, f.title, f.content) for f in shared] == [
        ("ticket-12.md", "ticket-12.md", MARKDOWN.encode("utf-8")),
        ("ticket-12.json", "ticket-12.json", JSON.encode("utf-8")),
    ]
    assert all(f.thread_ts is None and f.token == BOT_TOKEN for f in shared)
    assert fake.uploads_received == 2, "each file's bytes went to its upload URL"
    [asked_md, asked_json] = fake.calls_to("files.getUploadURLExternal")
    assert (asked_md.get("filename"), int(asked_md.get("length"))) == ("ticket-12.md", len(MARKDOWN.encode()))
    assert asked_json.get("filename") == "ticket-12.json"
    [completed] = fake.calls_to("files.completeUploadExternal")
    assert completed.get("channel_id") == f"D-{ANA}" and completed.token == BOT_TOKEN
    assert len(fake.files) == 2, "nothing shared anywhere else"


async def test_a_private_answer_stays_ephemeral_and_its_files_go_to_the_agents_dm(slack: Slack) -> None:
    key, respond = respond_for(slack)

    await slack.adapter.deliver([transcript()], respond=respond, actor=Actor(ANA_PERSON, Role.AGENT))

    fake = slack.fake
    answers = fake.responses_to(key)
    assert [r.text for r in answers] == [
        "Transcript of #12",
        "I've sent `ticket-12.md` and `ticket-12.json` to you in a direct message.",
    ]
    assert all(r.body.get("response_type") == "ephemeral" for r in answers)
    assert fake.posts() == [], "the text is not repeated in the DM"
    assert [f.filename for f in fake.files_in(f"D-{ANA}")] == ["ticket-12.md", "ticket-12.json"]
    assert fake.files_in(f"D-{ANA}")[1].text == JSON


async def test_a_private_answer_with_files_still_fits_one_response_url(slack: Slack) -> None:
    """The pointer to the files counts against the response_url's five messages: four pieces of text
    and a pointer fit; five and a pointer go to the DM whole."""
    long = "\n".join(f"line {n} " + "x" * 90 for n in range(170))  # about 16,000 characters: 5 pieces
    key, respond = respond_for(slack)
    message = StaffMessage(ToAgent(ANA_PERSON), (long,), attachments=FILES[:1])

    await slack.adapter.deliver([message], respond=respond, actor=Actor(ANA_PERSON, Role.AGENT))

    fake = slack.fake
    assert [r.text for r in fake.responses_to(key)] == [
        "That's a long answer, so I've sent it to you in a direct message."
    ]
    assert "".join(fake.texts(ANA)).replace("\n", "") == long.replace("\n", "")
    assert [f.filename for f in fake.files_in(f"D-{ANA}")] == ["ticket-12.md"]


async def test_a_failed_upload_is_said_and_logged_and_nothing_else_stops(slack: Slack) -> None:
    """An install from before files:write was added: Slack refuses the upload with missing_scope."""
    slack.errors_expected = True
    slack.fake.fail_next("files.getUploadURLExternal", status=200, error="missing_scope")
    key, respond = respond_for(slack)
    after = StaffMessage(ToAgent(ANA_PERSON), ("And one more thing",))

    await slack.adapter.deliver(
        [transcript(files=FILES[:1]), after], respond=respond, actor=Actor(ANA_PERSON, Role.AGENT)
    )

    assert [r.text for r in slack.fake.responses_to(key)] == [
        "Transcript of #12",
        "Sorry, I couldn't send you `ticket-12.md`. Please try again in a moment.",
        "And one more thing",
    ]
    assert slack.fake.files == []
    logged = [r.getMessage() for r in slack.caplog.records if r.levelno >= logging.ERROR]
    assert logged == ["Slack: could not upload `ticket-12.md`: missing_scope"]


async def test_a_failed_upload_to_a_dm_is_said_there(slack: Slack) -> None:
    slack.errors_expected = True
    slack.fake.fail_next("files.completeUploadExternal", status=200, error="invalid_channel")

    await slack.adapter.deliver([transcript(files=FILES[1:])])

    assert slack.fake.texts(ANA) == [
        "Transcript of #12",
        "Sorry, I couldn't send you `ticket-12.json`. Please try again in a moment.",
    ]


async def test_a_file_for_the_agents_goes_into_the_tickets_staff_thread(slack: Slack) -> None:
    opened = await slack.open_ticket()
    report = Attachment("ticket-1.md", "# Ticket #1\n", "text/markdown")
    message = StaffMessage(ToAgents(opened.number, "slack"), ("Transcript of #1",), attachments=(report,))

    await slack.adapter.deliver([message])

    [text] = [c for c in slack.fake.posts(AGENTS) if c.get("text") == "Transcript of #1"]
    assert text.get("thread_ts") == opened.card_ts
    [shared] = slack.fake.files_in(AGENTS)
    assert (shared.filename, shared.thread_ts, shared.text) == (
        "ticket-1.md",
        opened.card_ts,
        "# Ticket #1\n",
    )
    assert slack.fake.calls_to("conversations.open") == [], "the agents' channel is a conversation already"


async def test_file_names_in_the_pointer_cannot_ping_anyone(slack: Slack) -> None:
    key, respond = respond_for(slack)
    odd = (Attachment("<!channel> `x`.md", "x", "text/markdown"),)

    await slack.adapter.deliver([transcript(files=odd)], respond=respond, actor=Actor(ANA_PERSON, Role.AGENT))

    pointer = slack.fake.responses_to(key)[-1].text
    assert "<!channel>" not in pointer and pointer.count("`") == 2, pointer
    assert [f.filename for f in slack.fake.files] == ["<!channel> `x`.md"], "Slack stores the name as given"


async def test_ticket_transcript_answers_ephemerally_and_puts_the_files_in_the_agents_dm(
    slack: Slack,
) -> None:
    """The whole way: a signed `/ticket transcript #1` from Slack, the core's transcript, an ephemeral
    answer on the command's response_url and the two files uploaded to Ana's DM with the bot."""
    opened = await slack.open_ticket()

    key = await slack.command("/ticket", f"transcript #{opened.number}", ANA)

    dm = f"D-{ANA}"
    shared = await slack.fake.wait_for(lambda: len(slack.fake.files_in(dm)) == 2 and slack.fake.files_in(dm))
    await slack.settle()
    assert [f.filename for f in shared] == ["ticket-1.md", "ticket-1.json"]
    assert FIRST in shared[0].text
    assert FIRST in json.dumps(json.loads(shared[1].text), ensure_ascii=False)
    answers = slack.fake.responses_to(key)
    assert answers[-1].text == "I've sent `ticket-1.md` and `ticket-1.json` to you in a direct message."
    assert all(r.body.get("response_type") == "ephemeral" for r in answers)
    assert slack.fake.posts(ANA) == [], "the answer itself stays ephemeral"


# --- verified emails ------------------------------------------------------------------------------


async def test_users_info_is_asked_once_per_person(slack: Slack) -> None:
    opened = await slack.open_ticket()
    await slack.event(message(SUPPORT, DANA, "Any news?", thread_ts=opened.ts))
    await slack.wait_posts("the relay", AGENTS, thread_ts=opened.card_ts)
    await slack.settle()
    assert len(slack.fake.calls_to("users.info", user=DANA)) == 1


async def customer_of(slack: Slack, user: str) -> CustomerRow:
    """The customer profile a Slack user's identity belongs to, as stored."""
    ids = await slack.scalars(select(IdentityRow.customer_id).where(IdentityRow.external_id == user))
    assert len(ids) == 1, f"{user} has {len(ids)} identities"
    [customer] = await slack.scalars(select(CustomerRow).where(CustomerRow.id == ids[0]))
    return customer


async def test_a_verified_email_from_users_info_is_kept_with_the_customer(slack: Slack) -> None:
    await slack.open_ticket()

    dana = await customer_of(slack, DANA)
    assert (dana.email, dana.email_verified) == ("dana@example.com", True)


async def test_two_accounts_with_the_same_verified_email_are_one_customer(slack: Slack) -> None:
    await slack.open_ticket()
    await slack.event(
        message("D-UDANA2", "UDANA2", "It's Dana again, from my other account", channel_type="im")
    )
    await slack.wait_posts("the answer in the DM", "D-UDANA2")
    await slack.settle()

    first, second = await customer_of(slack, DANA), await customer_of(slack, "UDANA2")
    assert first.id == second.id, "linked by the email Slack verified (in any case)"


async def test_no_email_or_an_unconfirmed_one_links_nobody(slack: Slack) -> None:
    await slack.event(message(SUPPORT, CARL, "Hello, the printer is on fire"))
    await slack.event(message(SUPPORT, "UEVE", "Hello, same printer"))
    await slack.wait_posts("two greetings", SUPPORT, count=2)
    await slack.settle()

    carl, eve = await customer_of(slack, CARL), await customer_of(slack, "UEVE")
    assert (carl.email, carl.email_verified) == (None, False)
    assert eve.email is None, "an email Slack has not confirmed is not a verified one"
    assert carl.id != eve.id
