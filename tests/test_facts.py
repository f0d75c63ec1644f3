"""Facts picked out of conversations for the handoff packet."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import agent, build_desk, customer

from bot.facts import Fact, FactFinder, describe
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
