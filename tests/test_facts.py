"""Facts picked out of conversations for the handoff packet."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import agent, build_desk, customer
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.facts import DEFAULT_PATTERNS, Fact, FactFinder, describe
from bot.messages import StaffMessage
from bot.policy import PolicyError, load_policy

FINDER = load_policy().facts.finder()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my order #A-1234 never arrived", [Fact("order", "A-1234")]),
        ("Order number: 99871 is late", [Fact("order", "99871")]),
        ("invoice INV-2026-77 is wrong", [Fact("invoice", "INV-2026-77")]),
        ("my account id 88123", [Fact("account", "88123")]),
        ("write to dana.w+help@example.co.uk", [Fact("email", "dana.w+help@example.co.uk")]),
        ("call +44 20 7946 0958 after 5", [Fact("phone", "+44 20 7946 0958")]),
        ("phone: 555-123-4567", [Fact("phone", "555-123-4567")]),
        (
            "charged €40.00 and EUR 12 and 30 dollars",
            [Fact("amount", "€40.00"), Fact("amount", "EUR 12"), Fact("amount", "30 dollars")],
        ),
        ("since 2026-11-20, due 12 March", [Fact("date", "2026-11-20"), Fact("date", "12 March")]),
        ("nothing to see here, 2026 was a year", []),
    ],
)
def test_default_patterns_find_what_agents_need(text: str, expected: list[Fact]):
    assert FINDER.find([text]) == expected


def test_facts_are_listed_once_in_order_of_first_mention():
    facts = FINDER.find(["order A-1234 please", "ORDER a-1234 again", "and dana@example.com"])
    assert facts == [Fact("order", "A-1234"), Fact("email", "dana@example.com")]


def test_product_names_from_the_policy_are_found_whole_and_named_as_listed():
    finder = FactFinder({}, ["Relaydesk Pro", "Relaydesk"])
    assert finder.find(["my relaydesk pro licence", "Relaydesker is not a product"]) == [
        Fact("product", "Relaydesk Pro")
    ]


def test_describe_keeps_the_line_short():
    facts = [Fact("order", str(n)) for n in range(25)]
    line = describe(facts, limit=3)
    assert line == "order 0 · order 1 · order 2 · and 22 more"


def test_a_bad_pattern_in_the_policy_is_named(tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'default_queue = "general"\ninternal_queue = "general"\n[[queues]]\nname = "general"\n'
        'label = "support team"\n[facts.patterns]\nref = "ref([0-9"\n'
    )
    with pytest.raises(PolicyError, match=r"facts\.patterns: .*ref: not a valid regular expression"):
        load_policy(policy)


async def test_the_summary_an_agent_gets_on_claim_lists_the_facts_from_the_whole_conversation():
    h = build_desk()
    dana, ana = customer("Dana Scully"), agent("Ana Lima")
    await h.write(dana, "My order A-1234 never arrived")
    await h.write(dana, "You can reach me at dana@example.com")
    await h.run(ana, "/ticket note #1 NOTE-ONLY order Z-9999")
    out = await h.run(ana, "/ticket claim #1")
    summary = next(m for m in out if isinstance(m, StaffMessage) and "In their words:" in m.text)
    assert "Facts: order A-1234 · email dana@example.com" in summary.text
    assert "Facts:" in summary.text and "Z-9999" not in summary.text.split("In their words:")[0]


# --- the pre-check: patterns are skipped only where they cannot match --------------------------------

_TRIGGERS = [  # digits \u0661-\u0663 are Arabic-Indic; \u0131 a dotless i, \u017f a long s, \u212a Kelvin
    "order",
    "Order #",
    "ORDER no. ",
    "inv",
    "INV-",
    "invoice ",
    "account id ",
    "acc",
    "@",
    "a@b.co",
    ".uk",
    "+",
    "+44 ",
    "phone: ",
    "tel ",
    "Mobile",
    "cell",
    "$",
    "€",
    "£",
    "USD",
    "eur",
    "GBP",
    "dollars",
    "euro",
    "pounds",
    "-",
    "/",
    "12/",
    "2026-",
    "jan",
    "March",
    "dec",
    "1st ",
    "2nd",
    "3rd ",
    "th ",
    " ",
    ":",
    ".",
    ",",
    "(",
    ")",
    "A",
    "z",
    "0",
    "1",
    "42",
    "7",
    "99.5",
    "555-123-4567",
    "20 7946 0958",
    "(0) 12.34",
    "\u0661\u0662\u0663",
    "\u0663",
    "\u0131",
    "\u0130",
    "\u017f",
    "\u212a",
    "ß",
    "é",
    "\n",
    "\u2060",
]
"""Pieces that make the default patterns match or nearly match, and the characters where ignoring case or
`\\d` reach beyond ASCII (Arabic-Indic digits; letters that ignoring case takes for i, s or k)."""


def _both_ways(texts: list[str]) -> tuple[list[Fact], list[Fact]]:
    checked = load_policy().facts.finder()
    plain = load_policy().facts.finder()
    plain.prechecks = False
    return checked.find(texts), plain.find(texts)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_TRIGGERS), max_size=12))
def test_the_precheck_never_changes_the_facts_found_in_pieced_texts(pieces: list[str]):
    text = "".join(pieces)
    with_precheck, without = _both_ways([text])
    assert with_precheck == without, text


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("0123456789@+$€£-/ "), max_size=40))
def test_the_precheck_never_changes_the_facts_found_in_random_texts(text: str):
    with_precheck, without = _both_ways([text])
    assert with_precheck == without, text


def test_the_precheck_finds_the_same_in_each_example_and_skips_texts_without_triggers():
    finder = load_policy().facts.finder()
    assert finder._worth_running("Sorry about the toaster, I am checking it with the team now.") == []
    not_ascii = "\uff89order \u0663\u0663\u0663"  # looked at with regular expressions
    assert [kind for kind, _ in finder._worth_running(not_ascii)] == ["order"]
    examples = [
        "my order #A-1234 never arrived",
        "charged €40.00 and EUR 12 and 30 dollars",
        "since 2026-11-20, due 12 March",
        "call +44 20 7946 0958 after 5",
        "\u0131nvoice \u0661\u0662\u0663\u0664",
        "\u017feptember 3rd? no: 3 \u017fep",
    ]
    for text in examples:
        with_precheck, without = _both_ways([text])
        assert with_precheck == without, text


def test_a_policy_pattern_of_its_own_always_runs():
    finder = FactFinder({"ticket": r"T(\w+)"}, [])
    assert finder.find(["see Tabc"]) == [Fact("ticket", "abc")]


def test_a_policy_pattern_that_needs_no_digit_is_still_looked_for_in_texts_without_one():
    finder = FactFinder({"email": DEFAULT_PATTERNS["email"], "order": DEFAULT_PATTERNS["order"]}, [])
    assert finder.find(["mail dana@example.com, order soon"]) == [Fact("email", "dana@example.com")]
    assert finder._worth_running("no digits here, order soon") == []
