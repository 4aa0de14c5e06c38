"""SAATHII_* variables as settings (settings.environment_values): the format of
pydantic-settings (a variable per setting, nested keys after `__`, JSON for a section, a
list or a dict, names in any case), read without it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from saathii_ops.errors import UsageError
from saathii_ops.settings import environment_values, merged, settings_from


def test_a_setting_a_nested_key_and_a_dict_as_pydantic_settings_reads_them() -> None:
    environ = {
        "SAATHII_TIMEZONE": "UTC",
        "saathii_presence_inactive_minutes": "3",  # any case
        "SAATHII_COINS_PER_MINUTE__AUDIO": "12",
        "SAATHII_SCHEDULES": '{"coins-deduct": "*/2 * * * *"}',
        "SAATHII_COUNTED_CALL_STATUSES": '["completed"]',
        "SAATHII_CONFIG": "/etc/saathii/ops.toml",  # names no setting: not one
        "SAATHII_UNRELATED_TOOL": "x",
        "PATH": "/usr/bin",
    }
    assert environment_values(environ) == {
        "timezone": "UTC",
        "presence_inactive_minutes": "3",
        "coins_per_minute": {"audio": "12"},
        "schedules": {"coins-deduct": "*/2 * * * *"},
        "counted_call_statuses": ["completed"],
    }


def test_a_nested_key_overrides_its_sections_json_whatever_the_order() -> None:
    environ = {
        "SAATHII_BADGE_RATES__GOLD__VIDEO": "12",
        "SAATHII_BADGE_RATES": '{"gold": {"audio": "3.00", "video": "11"}}',
        "SAATHII_BADGE_RATES__SILVER": '{"audio": "1.60", "video": "9"}',
    }
    assert environment_values(environ) == {
        "badge_rates": {
            "gold": {"audio": "3.00", "video": "12"},
            "silver": {"audio": "1.60", "video": "9"},
        }
    }


def test_the_environment_overrides_the_file_key_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAATHII_BADGE_RATES__GOLD__VIDEO", "12.50")
    file_values = {"badge_rates": {"gold": {"audio": "2.00", "video": "11.00"}}}
    settings = settings_from(file_values)
    assert (settings.badge_rates.gold.audio, settings.badge_rates.gold.video) == (
        Decimal("2.00"),
        Decimal("12.50"),
    )
    assert settings.badge_rates.silver.audio == Decimal("1.50")  # the default


def test_bad_json_names_the_key_and_the_variable() -> None:
    with pytest.raises(UsageError) as raised:
        environment_values({"SAATHII_BADGE_RATES__GOLD": "{gold"})
    assert str(raised.value) == (
        "invalid configuration: badge_rates.gold: SAATHII_BADGE_RATES__GOLD is not valid JSON"
    )


def test_merged_keeps_the_base_keys_the_override_does_not_name() -> None:
    assert merged({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 4}}) == {
        "a": {"b": 1, "c": 4},
        "d": 3,
    }
    assert merged({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
