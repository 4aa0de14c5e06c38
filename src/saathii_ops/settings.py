"""Configuration (SPEC §2): defaults, overridden by a TOML file, overridden by SAATHII_* variables.

The database URL is resolved apart from the rest because it has its own order
of precedence (`--database-url`, SAATHII_DATABASE_URL, the config file, the
app's DATABASE_URL, the embedded default).
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from saathii_ops.errors import UsageError

CallType = Literal["audio", "video"]
Badge = Literal["gold", "silver", "bronze", "basic"]
CallStatus = Literal["completed", "dropped"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CoinsPerMinute(_Section):
    audio: int = Field(10, gt=0)
    video: int = Field(60, gt=0)


class BadgeThresholds(_Section):
    """Call minutes on the previous business day needed for each badge."""

    bronze: int = Field(60, ge=0)
    silver: int = Field(120, ge=0)
    gold: int = Field(180, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> BadgeThresholds:
        if not self.bronze <= self.silver <= self.gold:
            raise ValueError("thresholds must satisfy bronze <= silver <= gold")
        return self


class Rates(_Section):
    """Rupees per minute a listener earns."""

    audio: Decimal = Field(ge=0, max_digits=5, decimal_places=2)
    video: Decimal = Field(ge=0, max_digits=5, decimal_places=2)


class BadgeRates(_Section):
    basic: Rates = Rates(audio=Decimal("1.00"), video=Decimal("6.00"))
    bronze: Rates = Rates(audio=Decimal("1.25"), video=Decimal("7.00"))
    silver: Rates = Rates(audio=Decimal("1.50"), video=Decimal("8.50"))
    gold: Rates = Rates(audio=Decimal("1.80"), video=Decimal("10.00"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SAATHII_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str | None = None
    timezone: str = "Asia/Kolkata"
    coins_per_minute: CoinsPerMinute = CoinsPerMinute()
    badge_thresholds: BadgeThresholds = BadgeThresholds()
    badge_rates: BadgeRates = BadgeRates()
    counted_call_statuses: tuple[CallStatus, ...] = ("completed", "dropped")
    presence_inactive_minutes: int = Field(5, gt=0)
    call_stale_minutes: int = Field(10, gt=0)
    call_max_minutes: int = Field(240, gt=0)
    log_dir: Path = Path("/var/log/saathii")
    log_retention_days: int = Field(7, gt=0)
    # failed runs stay in the audit table longer than successes: they are what gets investigated
    failed_run_retention_days: int = Field(30, gt=0)
    # job name -> cron expression, replacing the registry's default schedule
    schedules: dict[str, str] = Field(default_factory=dict)
    # the timezone cron runs in; None: this machine's (see services/schedule.py)
    server_timezone: str | None = None
    statement_timeout_seconds: int = Field(50, gt=0)
    ping_url: str | None = None  # healthchecks.io-style base URL; the job name is appended
    ping_urls: dict[str, str] = Field(default_factory=dict)  # per job, overrides ping_url
    redis_url: str | None = None  # the app's call cache (SPEC §14); none: not kept in sync

    @field_validator("timezone", "server_timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            known_timezone(value)
        return value

    @cached_property
    def business_tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the config file, which arrives as init arguments.
        return (env_settings, init_settings)


def known_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}") from None


def config_path(cli_value: Path | None) -> Path | None:
    """`--config`, else SAATHII_CONFIG, else none."""
    if cli_value is not None:
        return cli_value
    env_value = os.environ.get("SAATHII_CONFIG")
    return Path(env_value) if env_value else None


def load_settings(path: Path | None) -> Settings:
    """Build the settings; any bad value is one UsageError naming the key."""
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        raise UsageError(f"invalid configuration: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        parts.append(f"{key}: {error['msg']}")
    return "; ".join(parts)


def resolve_database_url(cli_value: str | None, settings: Settings) -> tuple[str, str]:
    """The URL to use and where it came from (SPEC §2). The app's DATABASE_URL is a
    fallback only: on the app's server it is always set, with the app's credentials, and
    must not override the database an explicit config file names."""
    candidates = (
        (cli_value, "--database-url"),
        (os.environ.get("SAATHII_DATABASE_URL"), "SAATHII_DATABASE_URL"),
        (settings.database_url, "config file"),
        (os.environ.get("DATABASE_URL"), "DATABASE_URL"),
    )
    for value, source in candidates:
        if value:
            return value, source
    return f"sqlite:///{embedded_database_path()}", "embedded default"


def embedded_database_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("saathii-ops") / "saathii.db"
