"""The Slack app manifest asks for exactly what the adapter uses."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapters.slack import blocks
from adapters.slack.adapter import BOT_SCOPES

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
