"""The command grammar: `/ticket ...` and `/request ...` text in, command dataclasses or a ParseError out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import (
    AgentMention,
    Block,
    Claim,
    Command,
    CustomerRef,
    Help,
    Hold,
    ListQueue,
    Mine,
    Note,
    Pending,
    QueueName,
    Release,
    Reopen,
    Reply,
    Request,
    Resolve,
    SetPriority,
    Show,
    Transfer,
    Unblock,
)
from bot.domain import Priority
from bot.grammar import REQUEST_USAGE, VERBS, ParseError, help_text, parse

# --- verbs that take only a ticket --------------------------------------------------------------

ONLY_TICKET = {
    "claim": Claim,
    "release": Release,
    "pending": Pending,
    "reopen": Reopen,
    "show": Show,
}


@pytest.mark.parametrize(("verb", "cls"), ONLY_TICKET.items())
@pytest.mark.parametrize(
    ("args", "number"),
    [("#12", 12), ("12", 12), ("", None), ("  #7  ", 7), ("#0", 0), ("#123456789", 123456789)],
)
def test_ticket_only_verbs_take_hash_or_bare_id_or_none(verb: str, cls: type, args: str, number: int | None):
    assert parse(f"/ticket {verb} {args}") == cls(number)


@pytest.mark.parametrize("verb", ONLY_TICKET)
@pytest.mark.parametrize("extra", ["#12 now", "12 13", "please", "#12abc", "1234567890"])
def test_ticket_only_verbs_refuse_anything_more(verb: str, extra: str):
    with pytest.raises(ParseError) as caught:
        parse(f"/ticket {verb} {extra}")
    assert "didn't expect" in caught.value.message
    assert caught.value.usage == VERBS[verb].usage
    assert VERBS[verb].usage in str(caught.value)


def test_verbs_and_command_names_ignore_case_and_the_slash():
    assert parse("/TICKET Claim #3") == Claim(3)
    assert parse("ticket claim #3") == Claim(3)
    assert parse("  /ticket   claim   #3  ") == Claim(3)


# --- free-text verbs ---------------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "cls"), [("reply", Reply), ("note", Note), ("hold", Hold)])
def test_free_text_verbs_take_a_hash_id_then_the_text(verb: str, cls: type):
    assert parse(f"/ticket {verb} #4 the parcel is lost") == cls(4, "the parcel is lost")
    assert parse(f"/ticket {verb} the parcel is lost") == cls(None, "the parcel is lost")


@pytest.mark.parametrize(("verb", "cls"), [("reply", Reply), ("note", Note)])
def test_reply_and_note_read_a_leading_bare_number_as_text(verb: str, cls: type):
    """'reply 3 parcels shipped' must not answer ticket #3 with 'parcels shipped'."""
    assert parse(f"/ticket {verb} 3 parcels shipped") == cls(None, "3 parcels shipped")
    assert parse(f"/ticket {verb} #3 3 parcels shipped") == cls(3, "3 parcels shipped")


@pytest.mark.parametrize(("verb", "complaint"), [("reply", "What should"), ("note", "What should")])
def test_reply_and_note_take_a_lone_bare_number_as_the_ticket(verb: str, complaint: str):
    """A lone number is the ticket id, so what is missing is the text, not a text saying '3'."""
    with pytest.raises(ParseError) as caught:
        parse(f"/ticket {verb} 3")
    assert caught.value.message.startswith(complaint)


def test_hold_takes_a_bare_number_as_text_when_words_follow():
    """`/ticket hold 2 weeks for the vendor` must not put ticket #2 on hold."""
    assert parse("/ticket hold 12 waiting on the courier") == Hold(None, "12 waiting on the courier")
    assert parse("/ticket hold #12 waiting on the courier") == Hold(12, "waiting on the courier")


@pytest.mark.parametrize(("verb", "cls"), [("reply", Reply), ("note", Note), ("hold", Hold)])
def test_free_text_verbs_keep_newlines_and_inner_spacing(verb: str, cls: type):
    text = "Dear Dana,\n\n  1. refund sent\n  2. label attached\nBest"
    assert parse(f"/ticket {verb} #9 {text}\n") == cls(9, text)
    assert parse(f"/ticket {verb} #9\n{text}") == cls(9, text)


@pytest.mark.parametrize(
    ("verb", "complaint"),
    [
        ("reply", "What should the reply say?"),
        ("note", "What should the note say?"),
        ("hold", "Please give a reason for the hold"),
    ],
)
@pytest.mark.parametrize("args", ["", "#5", "#5   \n  "])
def test_free_text_verbs_require_their_text(verb: str, complaint: str, args: str):
    with pytest.raises(ParseError) as caught:
        parse(f"/ticket {verb} {args}")
    assert caught.value.message.startswith(complaint)
    assert caught.value.usage == VERBS[verb].usage


def test_resolve_summary_is_optional():
    assert parse("/ticket resolve") == Resolve(None, "")
    assert parse("/ticket resolve #8") == Resolve(8, "")
    assert parse("/ticket resolve #8 refunded\nshipping") == Resolve(8, "refunded\nshipping")


def test_resolve_takes_a_bare_number_as_the_ticket():
    assert parse("/ticket resolve 8") == Resolve(8, "")
    assert parse("/ticket resolve 8 refunded") == Resolve(None, "8 refunded")


# --- transfer -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "key"),
    [
        ("<@U123>", "U123"),
        ("<@!123>", "123"),
        ("<@U1|ana.lima>", "U1"),
        ("<@U1|>", "U1"),
        ("@ana", "ana"),
        ("@Ana.Lima", "Ana.Lima"),
    ],
)
def test_transfer_to_a_mentioned_agent(word: str, key: str):
    assert parse(f"/ticket transfer #3 {word}") == Transfer(3, AgentMention(key), "")


def test_transfer_keeps_the_reason_with_its_newlines():
    command = parse("/ticket transfer #3 @ben knows the courier\nand the depot")
    assert command == Transfer(3, AgentMention("ben"), "knows the courier\nand the depot")


@pytest.mark.parametrize(
    ("word", "queue"), [("billing", "billing"), ("Billing", "billing"), ("IT-2", "it-2")]
)
def test_transfer_to_a_queue_lower_cases_its_name(word: str, queue: str):
    assert parse(f"/ticket transfer #3 {word} card declined") == Transfer(
        3, QueueName(queue), "card declined"
    )


def test_transfer_takes_bare_ids_and_works_without_one():
    assert parse("/ticket transfer 3 billing") == Transfer(3, QueueName("billing"), "")
    assert parse("/ticket transfer @ben") == Transfer(None, AgentMention("ben"), "")


@pytest.mark.parametrize("args", ["", "#3", "3", "  "])
def test_transfer_needs_a_target(args: str):
    with pytest.raises(ParseError) as caught:
        parse(f"/ticket transfer {args}")
    assert "Who should take it over?" in caught.value.message
    assert caught.value.usage == VERBS["transfer"].usage


# --- priority -----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(Priority))
def test_priority_levels(level: Priority):
    assert parse(f"/ticket priority #2 {level.value}") == SetPriority(2, level)
    assert parse(f"/ticket priority 2 {level.value.upper()}") == SetPriority(2, level)
    assert parse(f"/ticket priority {level.value}") == SetPriority(None, level)


def test_priority_needs_a_level():
    with pytest.raises(ParseError) as caught:
        parse("/ticket priority #2")
    assert caught.value.message == "Which priority?"
    assert caught.value.usage == VERBS["priority"].usage


def test_priority_refuses_an_unknown_level():
    with pytest.raises(ParseError) as caught:
        parse("/ticket priority #2 critical")
    assert caught.value.message == "'critical' is not a priority."


def test_priority_refuses_words_after_the_level():
    with pytest.raises(ParseError) as caught:
        parse("/ticket priority #2 high please")
    assert "didn't expect 'please'" in caught.value.message


# --- listings and help --------------------------------------------------------------------------


def test_queue_with_and_without_a_name():
    assert parse("/ticket queue") == ListQueue(None)
    assert parse("/ticket queue Billing") == ListQueue("billing")


def test_queue_takes_one_name_only():
    with pytest.raises(ParseError) as caught:
        parse("/ticket queue billing general")
    assert "didn't expect 'general'" in caught.value.message
    assert caught.value.usage == VERBS["queue"].usage


def test_mine_takes_nothing():
    assert parse("/ticket mine") == Mine()
    with pytest.raises(ParseError) as caught:
        parse("/ticket mine #3")
    assert caught.value.usage == VERBS["mine"].usage


def test_help_with_and_without_a_topic():
    assert parse("/ticket help") == Help(None)
    assert parse("/ticket help Claim") == Help("claim")


def test_help_text_lists_every_verb_and_request():
    text = help_text()
    for verb in VERBS.values():
        assert f"{verb.usage}: {verb.purpose}" in text
    assert REQUEST_USAGE in text


@pytest.mark.parametrize("topic", ["claim", "CLAIM", "transfer"])
def test_help_text_for_one_verb(topic: str):
    verb = VERBS[topic.lower()]
    assert help_text(topic) == f"{verb.usage}: {verb.purpose}"


def test_help_text_for_an_unknown_topic_is_the_full_list():
    assert help_text("frobnicate") == help_text()


EXAMPLES = {
    "claim": "#1",
    "release": "#1",
    "reply": "#1 hello",
    "note": "#1 hello",
    "transfer": "#1 billing",
    "pending": "#1",
    "hold": "#1 vendor",
    "resolve": "#1",
    "reopen": "#1",
    "priority": "#1 high",
    "show": "#1",
    "snippet": "#1 looking-into-it",
    "customer": "<@U1>",
    "profile": "#1 timezone Europe/Berlin",
    "incentive": "#1 a 10% discount",
    "link": "<@U1> discord:42",
    "block": "<@U1> 2h",
    "unblock": "discord:42",
    "transcript": "#1",
    "promise": "#1 tomorrow 10:00 a call back",
    "kept": "#1 1",
    "stats": "30d billing",
    "queue": "billing",
    "mine": "",
    "help": "claim",
}


@pytest.mark.parametrize("name", VERBS)
def test_every_verb_in_the_help_parses(name: str):
    """The help must not advertise a verb the parser does not accept."""
    assert VERBS[name].usage.startswith(f"/ticket {name}")
    assert isinstance(parse(f"/ticket {name} {EXAMPLES[name]}"), Command)


# --- /request -----------------------------------------------------------------------------------


def test_request_keeps_its_text():
    assert parse("/request  a new laptop\nfor Friday  ") == Request("a new laptop\nfor Friday")
    assert parse("/REQUEST #12 is mine") == Request("#12 is mine")


@pytest.mark.parametrize("text", ["/request", "/request   ", "/request \n\t "])
def test_request_needs_text(text: str):
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert caught.value.usage == REQUEST_USAGE
    assert "what you need" in caught.value.message


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("typo", "guess"), [("clam", "claim"), ("replly", "reply"), ("resolv", "resolve")])
def test_unknown_verb_suggests_the_closest(typo: str, guess: str):
    with pytest.raises(ParseError) as caught:
        parse(f"/ticket {typo} #1")
    assert caught.value.message == f"I don't know the ticket command '{typo}'. Did you mean '{guess}'?"
    assert caught.value.usage == VERBS["help"].usage


def test_unknown_verb_without_a_close_match_has_no_guess():
    with pytest.raises(ParseError) as caught:
        parse("/ticket xyzzy")
    assert "Did you mean" not in caught.value.message
    assert "'xyzzy'" in caught.value.message


def test_unknown_verb_echo_is_short():
    with pytest.raises(ParseError) as caught:
        parse("/ticket " + "z" * 500)
    assert len(caught.value.message) < 120
    assert "…" in caught.value.message


def test_ticket_without_a_verb_lists_the_verbs():
    with pytest.raises(ParseError) as caught:
        parse("/ticket")
    assert "Which ticket command?" in caught.value.message
    assert help_text() in caught.value.message


@pytest.mark.parametrize(("text", "name"), [("/tickets claim", "tickets"), ("/help", "help"), ("", "")])
def test_unknown_top_level_command(text: str, name: str):
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert caught.value.message.startswith(f"I don't know the command /{name}.")
    assert caught.value.usage is None
    assert str(caught.value) == caught.value.message


def test_parse_error_string_shows_the_usage():
    error = ParseError("Nope.", "/ticket claim [#id]")
    assert str(error) == "Nope.\nUsage: /ticket claim [#id]"
    assert isinstance(error, ValueError)


# --- any text at all ----------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "/ticket",
        "/request",
        "ticket",
        *VERBS,
        "#1",
        "#",
        "12",
        "9999999999",
        "@ana",
        "@",
        "<@U1|x>",
        "<@!>",
        "<@",
        "high",
        "URGENT",
        "billing",
        "\n",
        "\t",
        "\u00a0",
        "\u2028",
        "\x00",
        "#١٢",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=8).map(" ".join)))
def test_parse_returns_a_command_or_raises_parse_error(text: str):
    try:
        command = parse(text)
    except ParseError as error:
        assert str(error)
        return
    assert isinstance(command, Command)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/ticket block <@U1>", Block(CustomerRef(key="U1"))),
        ("/ticket block #12 90m", Block(CustomerRef(ticket=12), timedelta(minutes=90))),
        ("/ticket block discord:42 Forever", Block(CustomerRef(key="42", platform="discord"), forever=True)),
        ("/ticket unblock @dana", Unblock(CustomerRef(key="dana"))),
    ],
)
def test_block_and_unblock_parse(text: str, expected: Command):
    assert parse(text) == expected
