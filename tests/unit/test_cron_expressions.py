"""Cron expressions (SPEC §10), pure: which expressions are valid, each job's expression,
a business-time schedule rewritten for the server's timezone, the next firings and the
shortest interval, and the machine's timezone. Values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import get_job
from saathii_ops.scheduling import expressions
from saathii_ops.scheduling.expressions import (
    job_schedule,
    machine_timezone,
    next_runs,
    server_schedule,
    server_timezone,
    shortest_interval_seconds,
    valid_expression,
)
from saathii_ops.settings import Settings

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("* * * * *", True),
        ("1 0 * * *", True),
        ("*/5 * * * *", True),
        ("@daily", True),
        ("0 0 * * * *", False),  # six fields: croniter reads seconds, cron does not
        ("0 0 L * *", False),  # croniter's last day of the month
        ("0 0 * * 1#2", False),  # croniter's second Monday
        ("61 * * * *", False),
        ("", False),
    ],
)
def test_valid_expressions_are_those_cron_reads(expression: str, valid: bool) -> None:
    assert valid_expression(expression) is valid


def test_a_jobs_schedule_is_the_registrys_unless_configured() -> None:
    assert job_schedule(get_job("badges-assign"), Settings()) == "1 0 * * *"
    configured = Settings(schedules={"coins-deduct": "*/2 * * * *"})
    assert job_schedule(get_job("coins-deduct"), configured) == "*/2 * * * *"
    assert job_schedule(get_job("calls-cleanup"), configured) == "*/10 * * * *"


def test_a_schedule_for_an_unknown_job_or_not_cron_is_refused() -> None:
    with pytest.raises(UsageError) as unknown:
        job_schedule(get_job("coins-deduct"), Settings(schedules={"coin-deduct": "* * * * *"}))
    assert str(unknown.value).startswith(
        "invalid configuration: schedules: unknown job 'coin-deduct'; known jobs: coins-deduct, "
    )
    with pytest.raises(UsageError) as invalid:
        job_schedule(get_job("coins-deduct"), Settings(schedules={"coins-deduct": "0 0 L * *"}))
    assert str(invalid.value) == (
        "invalid configuration: schedules.coins-deduct: '0 0 L * *' is not a valid cron "
        "expression (five fields: minute hour day-of-month month day-of-week)"
    )


@pytest.mark.parametrize(
    ("server", "expression"),
    [
        ("Asia/Kolkata", "1 0 * * *"),  # the business timezone: as written
        ("UTC", "31 18 * * *"),  # 00:01 IST is 18:31 UTC the day before
        ("Asia/Tokyo", "31 3 * * *"),  # UTC+9, 3 h 30 ahead of Kolkata: the same day
        ("Asia/Kathmandu", "16 0 * * *"),  # UTC+5:45, 15 minutes ahead
    ],
)
def test_badges_assign_is_rewritten_for_the_servers_clock(server: str, expression: str) -> None:
    job = get_job("badges-assign")
    assert server_schedule(job, Settings(), ZoneInfo(server), NOW) == expression


def test_a_weekday_moves_with_the_day_it_falls_on() -> None:
    settings = Settings(schedules={"badges-assign": "1 0 * * 1,3"})  # Monday, Wednesday IST
    job = get_job("badges-assign")
    assert server_schedule(job, settings, UTC_ZONE, NOW) == "31 18 * * 0,2"  # Sunday, Tuesday


def test_a_server_time_job_is_never_rewritten() -> None:
    job = get_job("presence-cleanup")
    assert server_schedule(job, Settings(), ZoneInfo("America/New_York"), NOW) == "*/5 * * * *"


@pytest.mark.parametrize(
    ("server", "schedule", "message"),
    [
        (
            "America/New_York",
            "1 0 * * *",
            "badges-assign runs at '1 0 * * *' in Asia/Kolkata, which is not one fixed time "
            "in America/New_York: daylight saving time changes the offset between them. ",
        ),
        (
            "UTC",
            "1 0 1 * *",
            "badges-assign: '1 0 1 * *' in Asia/Kolkata falls on another day in UTC, which a "
            "schedule naming days of the month cannot express",
        ),
        (
            "UTC",
            "*/30 0 * * *",
            "badges-assign: '*/30 0 * * *' is read in Asia/Kolkata; cron here runs in UTC, "
            "and only a schedule with one time of day can be converted",
        ),
    ],
)
def test_a_schedule_that_cannot_be_rewritten_is_refused(
    server: str, schedule: str, message: str
) -> None:
    settings = Settings(schedules={"badges-assign": schedule})
    with pytest.raises(UsageError) as refused:
        server_schedule(get_job("badges-assign"), settings, ZoneInfo(server), NOW)
    assert str(refused.value).startswith(message)


def test_the_next_runs_are_in_the_servers_timezone() -> None:
    assert next_runs("31 18 * * *", UTC_ZONE, NOW) == [
        datetime(2026, 11, 29, 18, 31, tzinfo=UTC_ZONE),
        datetime(2026, 11, 30, 18, 31, tzinfo=UTC_ZONE),
        datetime(2026, 12, 1, 18, 31, tzinfo=UTC_ZONE),
    ]
    kolkata = ZoneInfo("Asia/Kolkata")
    assert next_runs("1 0 * * *", kolkata, NOW, count=1) == [
        datetime(2026, 11, 30, 0, 1, tzinfo=kolkata)  # 11:30 IST now: tomorrow's
    ]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("* * * * *", 60),
        ("*/10 * * * *", 600),
        ("1 0 * * *", 86400),
        ("0 9,17 * * *", 8 * 3600),  # 09:00 to 17:00; 17:00 to 09:00 is 16 h
        ("0 0 * * 1,2", 86400),  # Monday to Tuesday; Tuesday to Monday is 6 days
    ],
)
def test_the_shortest_interval(expression: str, seconds: int) -> None:
    assert shortest_interval_seconds(expression, UTC_ZONE, NOW) == seconds


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's /etc/localtime and /etc/timezone, under tmp_path."""
    monkeypatch.setattr(expressions, "LOCALTIME", tmp_path / "localtime")
    monkeypatch.setattr(expressions, "TIMEZONE_FILE", tmp_path / "timezone")
    return tmp_path


def test_no_localtime_is_utc(machine: Path) -> None:
    (machine / "timezone").write_text("Asia/Kolkata\n")  # read only beside a localtime
    assert machine_timezone() == "UTC"


def test_a_localtime_link_into_zoneinfo_names_the_zone(machine: Path) -> None:
    zone = machine / "usr" / "share" / "zoneinfo" / "Asia" / "Kolkata"
    zone.parent.mkdir(parents=True)
    zone.write_bytes(b"TZif")
    (machine / "localtime").symlink_to(zone)
    assert machine_timezone() == "Asia/Kolkata"


def test_a_copied_localtime_falls_back_to_etc_timezone(machine: Path) -> None:
    (machine / "localtime").write_bytes(b"TZif")
    with pytest.raises(UsageError) as unknown:
        machine_timezone()
    assert "give it with --server-timezone or the server_timezone setting" in str(unknown.value)
    (machine / "timezone").write_text("Europe/Berlin\n")
    assert machine_timezone() == "Europe/Berlin"


def test_the_server_timezone_option_then_setting_then_machine(machine: Path) -> None:
    assert server_timezone("Asia/Tokyo", Settings(server_timezone="UTC")).key == "Asia/Tokyo"
    assert server_timezone(None, Settings(server_timezone="Asia/Tokyo")).key == "Asia/Tokyo"
    assert server_timezone(None, Settings()).key == "UTC"  # no localtime under tmp_path
    with pytest.raises(UsageError) as bad:
        server_timezone("Mars/Olympus", Settings())
    assert str(bad.value).startswith("--server-timezone: ")
