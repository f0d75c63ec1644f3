"""Slack settings, from the environment or `.env`. Tokens and secrets are never logged."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SLACK_API_URL = "https://slack.com/api/"


def _ids(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    client_secret: SecretStr | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    support_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="SLACK_SUPPORT_CHANNELS"
    )
    agent_channel: str | None = Field(None, validation_alias="SLACK_AGENT_CHANNEL")
    agent_team: str | None = Field(None, validation_alias="SLACK_AGENT_TEAM")
    agents: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="SLACK_AGENTS")
    api_url: str = Field(SLACK_API_URL, validation_alias="SLACK_API_URL")
    http_host: str = Field("0.0.0.0", validation_alias="RELAYDESK_HTTP_HOST")
    http_port: int = Field(3000, ge=0, le=65535, validation_alias="RELAYDESK_HTTP_PORT")

    @field_validator("support_channels", "agents", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _ids(value)

    @field_validator("api_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @property
    def configured(self) -> bool:
        """Slack starts when a bot token (one workspace) or OAuth credentials (many) are set."""
        return self.bot_token is not None or self.client_id is not None

    @property
    def oauth(self) -> bool:
        return self.client_id is not None

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.configured:
            return self
        if not self.agent_channel:
            raise ValueError("SLACK_AGENT_CHANNEL: set it to the id of the agents' channel (e.g. C0123ABCD)")
        if self.oauth and self.client_secret is None:
            raise ValueError("SLACK_CLIENT_SECRET: required with SLACK_CLIENT_ID")
        if self.oauth and not self.agent_team:
            raise ValueError(
                "SLACK_AGENT_TEAM: with SLACK_CLIENT_ID, set the team id of the workspace that has the "
                "agents' channel (its token posts cards, relays and notes)"
            )
        if self.oauth and self.socket_mode:
            raise ValueError("SLACK_APP_TOKEN: Socket Mode cannot serve the OAuth install flow; unset one")
        if not self.socket_mode and self.signing_secret is None:
            raise ValueError("SLACK_SIGNING_SECRET: required in HTTP mode (without SLACK_APP_TOKEN)")
        return self
