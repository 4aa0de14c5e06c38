"""Configuration (SPEC §2): defaults, TOML file, environment, database URL precedence."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from saathii_ops import settings as settings_module
from saathii_ops.errors import UsageError
from saathii_ops.settings import Settings, load_settings, resolve_database_url
from tests.conftest import Cli


def test_defaults_are_the_specs() -> None:
    s = Settings()
    assert s.timezone == "Asia/Kolkata"
    assert (s.coins_per_minute.audio, s.coins_per_minute.video) == (10, 60)
    t = s.badge_thresholds
    assert (t.bronze, t.silver, t.gold) == (60, 120, 180)
    r = s.badge_rates
    assert [(x.audio, x.video) for x in (r.basic, r.bronze, r.silver, r.gold)] == [
        (Decimal("1.00"), Decimal("6.00")),
        (Decimal("1.25"), Decimal("7.00")),
        (Decimal("1.50"), Decimal("8.50")),
        (Decimal("1.80"), Decimal("10.00")),
    ]
    assert s.counted_call_statuses == ("completed", "dropped")
    assert (s.presence_inactive_minutes, s.call_stale_minutes, s.call_max_minutes) == (5, 10, 240)
    assert (str(s.log_dir), s.log_retention_days) == ("/var/log/saathii", 7)


def test_the_file_overrides_defaults_and_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(
        'timezone = "UTC"\npresence_inactive_minutes = 9\n'
        "[coins_per_minute]\nvideo = 50\n"
        '[badge_rates.gold]\naudio = "2.00"\nvideo = "12.50"\n'
    )
    monkeypatch.setenv("SAATHII_PRESENCE_INACTIVE_MINUTES", "3")
    monkeypatch.setenv("SAATHII_COINS_PER_MINUTE__AUDIO", "12")
    s = load_settings(config)
    assert s.timezone == "UTC"
    assert s.presence_inactive_minutes == 3
    assert (s.coins_per_minute.audio, s.coins_per_minute.video) == (12, 50)
    assert (s.badge_rates.gold.audio, s.badge_rates.gold.video) == (
        Decimal("2.00"),
        Decimal("12.50"),
    )
    assert s.badge_rates.silver.audio == Decimal("1.50")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('timezone = "Mars/Olympus"', "timezone: Value error, unknown timezone 'Mars/Olympus'"),
        (
            "[coins_per_minute]\naudio = 0",
            "coins_per_minute.audio: Input should be greater than or equal to 1",
        ),
        (
            "presence_inactive_minutez = 5",
            "presence_inactive_minutez: unknown setting (did you mean presence_inactive_minutes?)",
        ),
        (
            "[badge_thresholds]\nsilver = 200",
            "badge_thresholds: Value error, thresholds must satisfy bronze <= silver <= gold",
        ),
    ],
)
def test_a_bad_value_names_the_key_with_exit_2(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(toml)
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("--config", str(config), "presence", "cleanup")
    assert result.exit_code == 2
    assert result.stderr == f"error: invalid configuration: {message}\n"


def test_a_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAATHII_CALL_MAX_MINUTES", "forever")
    with pytest.raises(UsageError, match="call_max_minutes: Input should be a valid integer"):
        load_settings(None)


def test_an_unreadable_or_invalid_config_file_is_exit_2(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'x.db'}")
    missing = cli("--config", str(tmp_path / "nope.toml"), "presence", "cleanup")
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"error: cannot read config file {tmp_path / 'nope.toml'}")
    broken = tmp_path / "broken.toml"
    broken.write_text("timezone = ")
    invalid = cli("--config", str(broken), "presence", "cleanup")
    assert invalid.exit_code == 2
    assert "is not valid TOML" in invalid.stderr


def test_saathii_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("call_stale_minutes = 15\n")
    monkeypatch.setenv("SAATHII_CONFIG", str(config))
    from saathii_ops.settings import config_path

    assert load_settings(config_path(None)).call_stale_minutes == 15


def test_database_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """--database-url > SAATHII_DATABASE_URL > the config file > DATABASE_URL > embedded."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://app/db")
    assert resolve_database_url(None, Settings()) == ("postgresql://app/db", "DATABASE_URL")
    file_settings = Settings(database_url="postgresql://file/db")
    # the app's variable is a fallback only: it never beats the config file
    assert resolve_database_url(None, file_settings) == ("postgresql://file/db", "config file")
    monkeypatch.setenv("SAATHII_DATABASE_URL", "postgresql://ops/db")
    assert resolve_database_url(None, file_settings)[1] == "SAATHII_DATABASE_URL"
    assert resolve_database_url("sqlite:///x.db", file_settings) == (
        "sqlite:///x.db",
        "--database-url",
    )


def test_the_embedded_default_is_an_absolute_sqlite_path(tmp_path: Path) -> None:
    url, source = resolve_database_url(None, Settings())
    assert source == "embedded default"
    assert url == f"sqlite:///{tmp_path / 'xdg-data' / 'saathii-ops' / 'saathii.db'}"
    assert Path(url.removeprefix("sqlite:///")).is_absolute()


BAD_CONFIG_FILES = {
    "statement_timeout_seconds = 3000000": "statement_timeout_seconds",
    "statement_timeout_seconds = 0": "statement_timeout_seconds",
    "[coins_per_minute]\naudio = 9223372036854775807": "coins_per_minute.audio",
    "[coins_per_minute]\nvideo = 10001": "coins_per_minute.video",
    "[coins_per_minute]\naudio = true": "coins_per_minute.audio",
    '[coins_per_minute]\naudio = "10"': "coins_per_minute.audio",
    "[coins_per_minute]\naudio = 10.0": "coins_per_minute.audio",
    "call_max_minutes = 99999999999999999": "call_max_minutes",
    "call_stale_minutes = 99999999999": "call_stale_minutes",
    "presence_inactive_minutes = 99999999999": "presence_inactive_minutes",
    "presence_inactive_minutes = false": "presence_inactive_minutes",
    "log_retention_days = 99999999999": "log_retention_days",
    "failed_run_retention_days = 0": "failed_run_retention_days",
    'redis_url = "notredis://x"': "redis_url",
    'redis_url = "redis://h:port/0"': "redis_url",
    'ping_url = "not a url"': "ping_url",
    'ping_url = "https://"': "ping_url",
    '[ping_urls]\ncoins-deduct = "ftp://x"': "ping_urls",
    "[badge_thresholds]\ngold = 99999": "badge_thresholds.gold",
    '[badge_thresholds]\nbronze = "60"': "badge_thresholds.bronze",
    '[badge_rates.gold]\naudio = -1\nvideo = "10.00"': "badge_rates.gold.audio",
    '[badge_rates.gold]\naudio = true\nvideo = "10.00"': "badge_rates.gold.audio",
    '[badge_rates.gold]\naudio = "1000.00"\nvideo = "10.00"': "badge_rates.gold.audio",
}


@pytest.mark.parametrize("toml", list(BAD_CONFIG_FILES))
def test_every_bad_configuration_is_one_line_naming_the_key_with_exit_2(
    tmp_path: Path, toml: str
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(toml + "\n")
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("--config", str(config), "coins", "deduct")
    assert result.exit_code == 2
    key = BAD_CONFIG_FILES[toml]
    assert result.stderr.startswith(f"error: invalid configuration: {key}: "), result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("SAATHII_SCHEDULES", "notjson", "schedules"),
        ("SAATHII_COINS_PER_MINUTE__AUDIO", "true", "coins_per_minute.audio"),
        ("SAATHII_COINS_PER_MINUTE__AUDIO", "0", "coins_per_minute.audio"),
        ("SAATHII_STATEMENT_TIMEOUT_SECONDS", "3000000", "statement_timeout_seconds"),
        ("SAATHII_CALL_MAX_MINUTES", "99999999999999999", "call_max_minutes"),
        ("SAATHII_LOG_RETENTION_DAYS", "99999999999", "log_retention_days"),
        ("SAATHII_REDIS_URL", "notredis://x", "redis_url"),
        ("SAATHII_PING_URL", "not a url", "ping_url"),
        ("SAATHII_BADGE_RATES__GOLD__AUDIO", "-1", "badge_rates.gold.audio"),
    ],
)
def test_a_bad_environment_variable_is_exit_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("coins", "deduct")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: invalid configuration: {key}: "), result.stderr
    assert result.stderr.count("\n") == 1


def test_a_config_file_that_is_not_utf8_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_bytes(b'timezone = "Asia/Kolkata" # \xff\n')
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("--config", str(config), "coins", "deduct")
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: config file {config} is not UTF-8 text (byte 28): save it as UTF-8\n"
    )


def test_a_url_setting_never_repeats_its_password(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text('redis_url = "redis://:S3cretPW@cache:notaport/0"\n')
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("--config", str(config), "coins", "deduct")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: invalid configuration: redis_url: Value error, is not a valid URL\n"
    )


def test_sane_values_at_the_limits_are_accepted(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(
        "statement_timeout_seconds = 2147483\ncall_max_minutes = 527040\n"
        'redis_url = "unix:///run/redis.sock"\nping_url = "https://hc-ping.com/abc"\n'
        "[coins_per_minute]\naudio = 1\nvideo = 10000\n"
        '[badge_rates.gold]\naudio = 2\nvideo = "999.99"\n'
    )
    s = load_settings(config)
    assert (s.statement_timeout_seconds, s.call_max_minutes) == (2147483, 527040)
    assert (s.coins_per_minute.audio, s.coins_per_minute.video) == (1, 10000)
    assert (s.badge_rates.gold.audio, s.badge_rates.gold.video) == (Decimal(2), Decimal("999.99"))


def test_a_redis_url_without_the_redis_extra_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis is the optional extra saathii-ops[redis]: a Redis URL configured without it
    stops every command before a billing run commits what the cache could not follow."""
    real_find_spec = settings_module.find_spec
    monkeypatch.setattr(
        settings_module, "find_spec", lambda name: None if name == "redis" else real_find_spec(name)
    )
    monkeypatch.setenv("SAATHII_REDIS_URL", "redis://:S3cretPW@cache:6379/0")
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("coins", "deduct")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid configuration: redis_url: Value error, it is set but the redis package "
        "is not installed: pip install 'saathii-ops[redis]' (or unset redis_url)\n"
    )
    monkeypatch.delenv("SAATHII_REDIS_URL")
    assert Cli(f"sqlite:///{tmp_path / 'x.db'}")("coins", "deduct").exit_code == 3  # no schema


def test_a_copied_settings_has_the_copys_business_timezone() -> None:
    settings = Settings()
    assert settings.business_tz.key == "Asia/Kolkata"
    copy = settings.model_copy(update={"timezone": "UTC"})
    assert copy.business_tz.key == "UTC"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "presence_inactive_minute = 5",
            "presence_inactive_minute: unknown setting (did you mean presence_inactive_minutes?)",
        ),
        (
            "[coins_per_minute]\naudoi = 12",
            "coins_per_minute.audoi: unknown setting (did you mean coins_per_minute.audio?)",
        ),
        (
            '[badge_rates.gold]\naudio = "2"\nvideo = "9"\nvidoe = "9"',
            "badge_rates.gold.vidoe: unknown setting (did you mean badge_rates.gold.video?)",
        ),
        (
            "[coin_per_minute]\naudio = 12",
            "coin_per_minute: unknown setting (did you mean coins_per_minute?)",
        ),
        ("colour = true", "colour: unknown setting"),
    ],
)
def test_a_typod_config_key_gets_a_did_you_mean(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(toml)
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("--config", str(config), "jobs", "list")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: invalid configuration: {message}")
