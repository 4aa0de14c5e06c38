"""Configuration (SPEC §2): defaults, TOML file, environment, database URL precedence."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

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
        ("[coins_per_minute]\naudio = 0", "coins_per_minute.audio: Input should be greater than 0"),
        (
            "presence_inactive_minutez = 5",
            "presence_inactive_minutez: Extra inputs are not permitted",
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
