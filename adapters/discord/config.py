"""Discord settings, from the environment or `.env`. The token is never logged."""

from __future__ import annotations

import base64
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class DiscordSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    support_channels: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias="DISCORD_SUPPORT_CHANNELS"
    )
    agent_channel: int | None = Field(None, validation_alias="DISCORD_AGENT_CHANNEL")
    agent_role: str | None = Field(None, validation_alias="DISCORD_AGENT_ROLE")
    guild_id: int | None = Field(None, validation_alias="DISCORD_GUILD_ID")
    application_id: int | None = Field(None, validation_alias="DISCORD_APPLICATION_ID")

    @field_validator("support_channels", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def configured(self) -> bool:
        return self.token is not None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.configured:
            return self
        if self.agent_channel is None:
            raise ValueError("DISCORD_AGENT_CHANNEL: set it to the id of the agents' channel")
        if not self.agent_role:
            raise ValueError("DISCORD_AGENT_ROLE: set it to the agents' role (its id or its name)")
        if self.guild_id is None:
            raise ValueError(
                "DISCORD_GUILD_ID: set it to your server's id; only that server's agent role counts"
            )
        return self

    def app_id(self) -> int | None:
        """The application's id: DISCORD_APPLICATION_ID, or read from the token's first part."""
        if self.application_id is not None:
            return self.application_id
        if self.token is None:
            return None
        first = self.token.get_secret_value().split(".", 1)[0]
        try:
            return int(base64.b64decode(first + "=" * (-len(first) % 4)))
        except ValueError:
            return None
