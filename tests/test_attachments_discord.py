"""Files for staff on Discord, over the wire.

The real adapter (as `test_discord.py` builds and connects it) delivers staff messages with attachments;
discord.py sends them as Discord takes files, multipart/form-data with `payload_json` and `files[n]`, to the
local fake of Discord's REST API (`discord_fake.py`), which keeps each file's bytes. A private answer is an
ephemeral follow-up of a real interaction: its payload is built by the fake in Discord's shape and parsed by
discord.py's own `Interaction`, and it is deferred over REST as the adapter's commands do.
"""

from __future__ import annotations

import discord
import test_discord
from discord_fake import EPHEMERAL, Call
from test_discord import AGENTS, ANA, BEN, FIRST, Discord

from bot.commands import Actor
from bot.domain import Role
from bot.messages import Attachment, Person, StaffKind, StaffMessage, ToAgent, ToAgents

MARKDOWN = "# Ticket #12\n\nDana: my order A-1234 never arrived\nAna: on it — ünïcödé ✓\n"
JSON = '{"ticket": 12, "status": "resolved"}\n'
FILES = (
    Attachment("ticket-12.md", MARKDOWN, "text/markdown"),
    Attachment("ticket-12.json", JSON, "application/json"),
)
ANA_PERSON = Person("discord", str(ANA), "Ana")

# test_discord's harness (pytest finds fixtures by these names)
fake = test_discord.fake
discord_env = test_discord.discord_env
start_discord = test_discord.start_discord
dc = test_discord.dc


def transcript(to: Person = ANA_PERSON, files: tuple[Attachment, ...] = FILES) -> StaffMessage:
    return StaffMessage(ToAgent(to), ("Transcript of #12",), StaffKind.INFO, attachments=files)


async def deferred(dc: Discord, user: int = ANA) -> tuple[dict[str, object], discord.Interaction]:
    """`/ticket mine` by `user` in the agents' channel, as discord.py parses it, deferred ephemerally."""
    payload = dc.fake.command(user, AGENTS, "ticket", "mine")
    interaction: discord.Interaction = discord.Interaction(data=payload, state=dc.client._connection)  # type: ignore[arg-type]
    await interaction.response.defer(ephemeral=True, thinking=True)
    return payload, interaction


def files_of(call: Call) -> list[tuple[str, bytes]]:
    """The files a request carried, each checked against its description in payload_json."""
    described = {f"files[{a['id']}]": a["filename"] for a in call.json.get("attachments") or []}
    assert {f.field for f in call.files} == set(described), "every file part is described, and only those"
    return [(described[f.field], f.content) for f in call.files]


async def test_a_private_answer_with_files_is_one_ephemeral_followup_carrying_them(dc: Discord) -> None:
    payload, interaction = await deferred(dc)

    await dc.adapter.deliver([transcript()], interaction, Actor(ANA_PERSON, Role.AGENT))

    [followup] = dc.fake.followups(payload)
    assert followup.content == "Transcript of #12"
    assert followup.flags & EPHEMERAL
    assert files_of(followup) == [
        ("ticket-12.md", MARKDOWN.encode("utf-8")),
        ("ticket-12.json", JSON.encode("utf-8")),
    ]
    assert [a["filename"] for a in followup.answer["attachments"]] == ["ticket-12.md", "ticket-12.json"]
    assert dc.fake.posts() == [], "nothing went anywhere else"


async def test_a_transcript_for_an_agent_outside_an_interaction_goes_to_their_dm(dc: Discord) -> None:
    await dc.adapter.deliver([transcript()])

    [dm] = dc.fake.posts(dc.fake.dm_channel(ANA))
    assert dm.content == "Transcript of #12"
    assert [name for name, _ in files_of(dm)] == ["ticket-12.md", "ticket-12.json"]
    assert dm.files[0].text == MARKDOWN
    assert len(dc.fake.posts()) == 1


async def test_more_than_ten_files_go_ten_to_a_message(dc: Discord) -> None:
    many = tuple(Attachment(f"part-{n:02d}.txt", f"part {n}\n", "text/plain") for n in range(12))

    await dc.adapter.deliver([transcript(files=many)])

    first, second = dc.fake.posts(dc.fake.dm_channel(ANA))
    assert first.content == "Transcript of #12" and len(first.files) == 10
    assert second.content == "" and [name for name, _ in files_of(second)] == ["part-10.txt", "part-11.txt"]
    assert [content for _, content in files_of(first) + files_of(second)] == [
        f"part {n}\n".encode() for n in range(12)
    ]


async def test_a_file_above_the_limit_discord_announces_is_named_in_the_text_and_the_rest_sent(
    dc: Discord,
) -> None:
    """The interaction says how large an upload may be (`attachment_size_limit`): files that fit go
    (each message's files together within it), a larger one is named instead of failing the answer."""
    dc.fake.attachment_size_limit = 4096
    payload, interaction = await deferred(dc)
    files = (
        Attachment("a.md", "a" * 3000, "text/markdown"),
        Attachment("huge.json", "h" * 5000, "application/json"),
        Attachment("b.md", "b" * 3000, "text/markdown"),
    )

    await dc.adapter.deliver([transcript(files=files)], interaction, Actor(ANA_PERSON, Role.AGENT))

    first, second = dc.fake.followups(payload)
    assert first.content == (
        "Transcript of #12\n`huge.json` is too large to send here (4.9 KiB; Discord takes up to 4.0 KiB)."
    )
    assert [name for name, _ in files_of(first)] == ["a.md"]
    assert second.content == "" and [name for name, _ in files_of(second)] == ["b.md"]
    assert all(call.flags & EPHEMERAL for call in (first, second))


async def test_a_file_for_the_agents_goes_into_the_tickets_staff_thread(dc: Discord) -> None:
    opened = await dc.open_ticket()
    report = (Attachment("ticket-1.md", "# Ticket #1\n", "text/markdown"),)
    message = StaffMessage(ToAgents(opened.number, "discord"), ("Transcript of #1",), attachments=report)

    await dc.adapter.deliver([message])

    [posted] = [c for c in dc.fake.posts(opened.card_id) if c.content == "Transcript of #1"]
    assert files_of(posted) == [("ticket-1.md", b"# Ticket #1\n")]


async def test_a_transcript_for_another_agent_during_an_interaction_goes_to_their_dm(dc: Discord) -> None:
    """Only the one who acted gets an ephemeral answer; files for a colleague go to the colleague's DM."""
    payload, interaction = await deferred(dc)
    ben = Person("discord", str(BEN), "Ben")

    await dc.adapter.deliver([transcript(to=ben)], interaction, Actor(ANA_PERSON, Role.AGENT))

    [dm] = dc.fake.posts(dc.fake.dm_channel(BEN))
    assert [name for name, _ in files_of(dm)] == ["ticket-12.md", "ticket-12.json"]
    [done] = dc.fake.followups(payload)
    assert done.content == "Done." and not done.files


async def test_ticket_transcript_is_an_ephemeral_followup_with_the_files(dc: Discord) -> None:
    """The whole way: `/ticket transcript` as Discord sends the interaction, the core's transcript, and
    one ephemeral follow-up carrying both files."""
    opened = await dc.open_ticket()

    payload = dc.command(ANA, AGENTS, "ticket", "transcript", ticket=opened.number)

    await dc.wait_followups(payload, "the transcript")
    await dc.settle()
    [followup] = dc.fake.followups(payload)
    assert followup.flags & EPHEMERAL
    files = files_of(followup)
    assert [name for name, _ in files] == ["ticket-1.md", "ticket-1.json"]
    assert FIRST in files[0][1].decode("utf-8")
