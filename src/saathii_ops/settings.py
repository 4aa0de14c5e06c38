"""Configuration (SPEC §2): defaults, overridden by a TOML file, overridden by SAATHII_* variables.

pydantic validates every value. The SAATHII_* variables are read here, in pydantic-settings'
format, without it: importing it (asyncio, its sources for clouds and command lines) cost
~95 ms of CPU on every cron start of a job.

The database URL is resolved apart from the rest because it has its own order
of precedence (`--database-url`, SAATHII_DATABASE_URL, the config file, the
app's DATABASE_URL, the embedded default).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from saathii_ops.errors import UsageError
from saathii_ops.files import read_regular_file
from saathii_ops.output.masking import mask_secrets

CallType = Literal["audio", "video"]
Badge = Literal["gold", "silver", "bronze", "basic"]
# the ended statuses of calls.CallStatus (a Literal: a bad value's error lists these two)
EndedCallStatus = Literal["completed", "dropped"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Ranges that keep every run computable (SPEC §2: a value that would make a run fail is
# a configuration error): a year of minutes keeps `now - limit` far inside Python's and
# the database's datetimes; PostgreSQL's statement_timeout is an int4 of milliseconds.
MAX_MINUTES = 366 * 24 * 60
MAX_DAYS = 3660
MAX_STATEMENT_TIMEOUT_SECONDS = (2**31 - 1) // 1000
MAX_COINS_PER_MINUTE = 10_000
# a run's deadline leaves room for its bookkeeping (runner.BOOKKEEPING_SECONDS) and work
MIN_RUN_DEADLINE_SECONDS = 10
MINUTES_PER_DAY = 24 * 60


def _minutes(default: int) -> Any:
    return Field(default, ge=1, le=MAX_MINUTES)


def _days(default: int) -> Any:
    return Field(default, ge=1, le=MAX_DAYS)


class CoinsPerMinute(_Section):
    audio: int = Field(10, ge=1, le=MAX_COINS_PER_MINUTE)
    video: int = Field(60, ge=1, le=MAX_COINS_PER_MINUTE)


class BadgeThresholds(_Section):
    """Call minutes on the previous business day needed for each badge."""

    bronze: int = Field(60, ge=0, le=MINUTES_PER_DAY)
    silver: int = Field(120, ge=0, le=MINUTES_PER_DAY)
    gold: int = Field(180, ge=0, le=MINUTES_PER_DAY)

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


class Settings(_Section):
    database_url: str | None = None
    timezone: str = "Asia/Kolkata"
    coins_per_minute: CoinsPerMinute = CoinsPerMinute()
    badge_thresholds: BadgeThresholds = BadgeThresholds()
    badge_rates: BadgeRates = BadgeRates()
    counted_call_statuses: tuple[EndedCallStatus, ...] = Field(
        ("completed", "dropped"), min_length=1
    )
    presence_inactive_minutes: int = _minutes(5)
    call_stale_minutes: int = _minutes(10)
    call_max_minutes: int = _minutes(240)
    log_dir: Path = Path("/var/log/saathii")
    log_retention_days: int = _days(7)
    # failed runs stay in the audit table longer than successes: they are what gets investigated
    failed_run_retention_days: int = _days(30)
    # job name -> cron expression, replacing the registry's default schedule
    schedules: dict[str, str] = Field(default_factory=dict)
    # the timezone cron runs in; None: this machine's (see services/scheduling/expressions.py)
    server_timezone: str | None = None
    statement_timeout_seconds: int = Field(50, ge=1, le=MAX_STATEMENT_TIMEOUT_SECONDS)
    # the longest a whole run may take, its lock waits and bookkeeping included
    run_deadline_seconds: int = Field(
        300, ge=MIN_RUN_DEADLINE_SECONDS, le=MAX_STATEMENT_TIMEOUT_SECONDS
    )
    ping_url: str | None = None  # healthchecks.io-style base URL; the job name is appended
    ping_urls: dict[str, str] = Field(default_factory=dict)  # per job, overrides ping_url
    redis_url: str | None = None  # the app's call cache (SPEC §14); none: not kept in sync

    @field_validator("timezone", "server_timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            known_timezone(value)
        return value

    @field_validator("log_dir")
    @classmethod
    def _log_directory(cls, value: Path) -> Path:
        # relative, it would mean the install directory to `cron install` and the working
        # directory (under cron, $HOME) to `logs prune`
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, not {str(value)!r}")
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("ping_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value, ("http", "https"))
        return value

    @field_validator("ping_urls")
    @classmethod
    def _http_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for url in value.values():
            check_url(url, ("http", "https"))
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value, ("redis", "rediss", "unix"))
            # checked here, before a billing run commits what the cache then cannot follow
            if find_spec("redis") is None:
                raise ValueError(
                    "it is set but the redis package is not installed: "
                    "pip install 'saathii-ops[redis]' (or unset redis_url)"
                )
        return value

    @property
    def business_tz(self) -> ZoneInfo:
        # not cached on the instance: a copy (model_copy) with another timezone would keep
        # it; zoneinfo caches its zones itself
        return ZoneInfo(self.timezone)


def known_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}") from None


def check_url(value: str, schemes: tuple[str, ...]) -> None:
    """A URL with one of `schemes`, a host (or a socket path) and a numeric port, if any.

    The message never repeats the URL: it may hold a password.
    """
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if not parts.scheme:
        raise ValueError("is not a URL (no scheme)")
    if parts.scheme not in schemes:
        raise ValueError(f"the URL's scheme must be {' or '.join(schemes)}, not {parts.scheme!r}")
    if not (parts.hostname or (parts.scheme == "unix" and parts.path)):
        raise ValueError("the URL has no host")


def _strict_types(values: dict[str, Any], model: type[BaseModel], prefix: str = "") -> None:
    """TOML has real numbers and booleans: a number setting given as a boolean or a
    string (`audio = true`, `audio = "10"`) is refused instead of coerced.

    Environment variables are text by nature, and pydantic parses them as usual.
    Decimal rates may be strings ("1.25", exact) but not booleans.
    """
    for name, value in values.items():
        field = model.model_fields.get(name)
        if field is None:
            continue  # pydantic names the unknown key
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(value, dict):
                _strict_types(value, annotation, f"{key}.")
        elif annotation is int and type(value) is not int:
            raise UsageError(
                f"invalid configuration: {key}: must be a whole number, not {_toml_kind(value)}"
            )
        elif annotation is Decimal and isinstance(value, bool):
            raise UsageError(f"invalid configuration: {key}: must be a number, not a boolean")


def _toml_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, float):
        return f"the decimal {value!r}"
    return f"a {type(value).__name__}"


def config_path(cli_value: Path | None) -> Path | None:
    """`--config`, else SAATHII_CONFIG, else none."""
    if cli_value is not None:
        return cli_value
    env_value = os.environ.get("SAATHII_CONFIG")
    return Path(env_value) if env_value else None


def load_settings(path: Path | None) -> Settings:
    """Build the settings; any bad value is one UsageError naming the key."""
    return settings_from(read_config_file(path) if path is not None else {})


def read_config_file(path: Path) -> dict[str, Any]:
    """The config file's values as TOML gives them: a regular file of sensible size, UTF-8
    TOML, numbers and booleans of the right kinds; else one UsageError."""
    try:
        text = read_regular_file(path, "config file").decode("utf-8")
        values = tomllib.loads(text)
    except OSError as exc:  # missing (the reader reports any other error itself)
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"config file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    _strict_types(values, Settings)
    return values


def settings_from(file_values: dict[str, Any]) -> Settings:
    """The settings from a config file's values, the environment and the defaults."""
    values = merged(file_values, environment_values(os.environ))
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise UsageError(f"invalid configuration: {describe_validation_error(exc)}") from None


ENV_PREFIX = "SAATHII_"
NESTED_DELIMITER = "__"


def environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings SAATHII_* variables give, as text for pydantic to validate: a variable
    per setting (SAATHII_TIMEZONE), a nested key after `__`
    (SAATHII_COINS_PER_MINUTE__AUDIO), JSON for a section, a list or a dict
    (SAATHII_SCHEDULES='{"coins-deduct": "*/2 * * * *"}'); names in any case. A variable
    that names no setting is not one (SAATHII_CONFIG)."""
    values: dict[str, Any] = {}
    # a whole setting first, so that its nested keys given apart override its JSON
    for name in sorted(environ, key=lambda name: name.count(NESTED_DELIMITER)):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
        if path[0] not in Settings.model_fields:
            continue
        value: Any = environ[name]
        if _is_structured(_annotation_at(path)):
            try:
                value = json.loads(value)
            except ValueError:
                key = ".".join(path)
                raise UsageError(
                    f"invalid configuration: {key}: {name} is not valid JSON"
                ) from None
        for part in reversed(path):
            value = {part: value}
        values = merged(values, value)
    return values


def _annotation_at(path: list[str]) -> Any:
    """The type a nested key's value must have; None where the key names no setting."""
    annotation: Any = Settings
    for part in path:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field is not None else None
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return annotation


def _is_structured(annotation: Any) -> bool:
    """A section, a list or a dict: given as JSON in one variable."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return get_origin(annotation) in (dict, tuple, list)


def merged(base: Any, override: Any) -> Any:
    """`override` over `base`, key by key in nested sections."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    result = dict(base)
    for key, value in override.items():
        result[key] = merged(result[key], value) if key in result else value
    return result


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        if error["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown setting{_did_you_mean(error['loc'])}")
        else:
            parts.append(f"{key}: {error['msg']}")
    return "; ".join(parts)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """(did you mean presence_inactive_minutes?), for a key of the model it is in."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)"


def secret_readable_by_others(path: Path, file_values: dict[str, Any]) -> str | None:
    """The warning for a config file that itself holds a password (in any of its values:
    its database, Redis or ping URL) and that its group or others may read; None when there
    is nothing to say. A password given in the environment is not the file's."""
    if not any(mask_secrets(text) != text for text in _strings(file_values)):
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & 0o044:
        return None
    return (
        f"warning: config file {path} holds a password and others can read it "
        f"(mode {mode & 0o777:o}): chmod 600 {path}"
    )


def _strings(value: object) -> list[str]:
    """Every string in a TOML value, its tables' and arrays' included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


class UrlSource(StrEnum):
    """Where the database URL came from (SPEC §2), in the order they are tried."""

    OPTION = "--database-url"
    ENVIRONMENT = "SAATHII_DATABASE_URL"
    CONFIG_FILE = "config file"
    APP_ENVIRONMENT = "DATABASE_URL"  # the app's own
    EMBEDDED = "embedded default"


def resolve_database_url(cli_value: str | None, settings: Settings) -> tuple[str, UrlSource]:
    """The URL to use and where it came from (SPEC §2). The app's DATABASE_URL is a
    fallback only: on the app's server it is always set, with the app's credentials, and
    must not override the database an explicit config file names."""
    candidates = (
        (cli_value, UrlSource.OPTION),
        (os.environ.get("SAATHII_DATABASE_URL"), UrlSource.ENVIRONMENT),
        (settings.database_url, UrlSource.CONFIG_FILE),
        (os.environ.get("DATABASE_URL"), UrlSource.APP_ENVIRONMENT),
    )
    for value, source in candidates:
        if value:
            return value, source
    return f"sqlite:///{embedded_database_path()}", UrlSource.EMBEDDED


def embedded_database_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("saathii-ops") / "saathii.db"
