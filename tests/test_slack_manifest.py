"""The Slack app manifest asks for exactly what the adapter uses."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapters.slack import blocks
from adapters.slack.adapter import BOT_SCOPES
from bot.commands import AgentMention, CustomerRef, Link, ShowCustomer, Transfer
from bot.grammar import parse

MANIFEST = Path(__file__).resolve().parents[1] / "slack-manifest.yaml"


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_scopes_are_the_ones_the_adapter_requests() -> None:
    assert sorted(manifest()["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)


def test_commands_shortcuts_and_events_match_the_listeners() -> None:
    data = manifest()
    assert {c["command"] for c in data["features"]["slash_commands"]} == {"/ticket", "/request"}
    assert [s["callback_id"] for s in data["features"]["shortcuts"]] == [blocks.REQUEST_SHORTCUT]
    events = set(data["settings"]["event_subscriptions"]["bot_events"])
    assert events == {"app_home_opened", "message.channels", "message.groups", "message.im"}
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["features"]["app_home"]["home_tab_enabled"] is True


def test_every_request_url_is_the_one_endpoint_the_adapter_serves() -> None:
    data = manifest()
    urls = {
        data["settings"]["event_subscriptions"]["request_url"],
        data["settings"]["interactivity"]["request_url"],
        *(c["url"] for c in data["features"]["slash_commands"]),
    }
    assert {url.split("/", 3)[3] for url in urls} == {"slack/events"}
    assert data["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")


def test_files_and_verified_emails_have_their_scopes() -> None:
    """files_upload_v2 needs files:write (transcripts for agents); users.info shows profile.email only
    with users:read.email (identities linked by a verified email)."""
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    assert {"files:write", "users:read.email", "im:write"} <= scopes


def test_ticket_commands_arrive_with_mentions_escaped_as_the_grammar_reads_them() -> None:
    """`should_escape: true` makes Slack send `@ben` as `<@UBEN|ben>`, a user id the grammar takes (a bare
    `@ben` would be a display name to guess); `/request` text is kept as people typed it."""
    escaped = {c["command"]: c["should_escape"] for c in manifest()["features"]["slash_commands"]}
    assert escaped == {"/ticket": True, "/request": False}
    transfer = parse("/ticket transfer #1 <@UBEN|ben> knows the courier")
    assert transfer == Transfer(1, AgentMention("UBEN"), "knows the courier")
    assert parse("/ticket customer <@UDANA|dana>") == ShowCustomer(CustomerRef(key="UDANA"))
    assert parse("/ticket link <@UDANA|dana> discord:4711") == Link(
        CustomerRef(key="UDANA"), CustomerRef(key="4711", platform="discord")
    )
