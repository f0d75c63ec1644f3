"""Settings from the environment and `.env`, validated at start with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.policy import describe_errors

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///relaydesk.db"
SUPPORTED_DRIVERS = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgresql+asyncpg", "postgres")
S = TypeVar("S", bound=BaseSettings)


class ConfigError(ValueError):
    """Configuration that cannot work; the message says which key and why."""


def _split_names(value: object) -> object:
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


class Settings(BaseSettings):
    """Everything Relaydesk reads from its environment. Secrets only ever come from here."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    policy_path: Path | None = Field(None, validation_alias="RELAYDESK_POLICY")
    console_agents: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ana", "ben"], validation_alias="RELAYDESK_CONSOLE_AGENTS"
    )
    log_level: str = Field("WARNING", validation_alias="RELAYDESK_LOG_LEVEL")
    export_dir: Path = Field(Path("exports"), validation_alias="RELAYDESK_EXPORT_DIR")
    """Where the console saves files meant for staff (ticket transcripts); relative to the working
    directory unless absolute, and created when first needed."""
    sweep_seconds: float = Field(10.0, gt=0, le=3600, validation_alias="RELAYDESK_SWEEP_SECONDS")
    """How often each process sweeps for due work (check-ins, and messages the outbox must send again)."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            driver = make_url(value).drivername
        except ArgumentError:
            raise ValueError("not a database URL (e.g. sqlite:///relaydesk.db)") from None
        if driver not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"'{driver}' is not supported; use sqlite:///file.db or postgresql://user@host/db"
            )
        return value

    @field_validator("console_agents", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        return _split_names(value)

    @field_validator("console_agents")
    @classmethod
    def _some_agents(cls, value: list[str]) -> list[str]:
        if any(":" in name or " " in name for name in value):
            raise ValueError("agent names are single words without ':' (e.g. ana,ben)")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level


def load_settings(kind: type[S] = Settings) -> S:  # type: ignore[assignment]  # default is a Settings
    """Read settings (ours, or an adapter's), turning validation errors into one readable ConfigError."""
    try:
        return kind()
    except ValidationError as error:
        raise ConfigError(f"configuration:\n{describe_errors(error)}") from error
