"""A business-time schedule in a crontab (SPEC §10): badges-assign at 00:01 in
Asia/Kolkata rewritten for the server's timezone, what cron cannot express refused, the
machine's timezone read from /etc/localtime."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import get_job
from saathii_ops.scheduling import expressions
from saathii_ops.settings import Settings
from tests.support.cron import (
    BADGES,
    FOREIGN,
    NOW,
    cron,
    entries,
    install_args,
)


def test_badges_fire_at_0001_business_time_on_a_utc_server_and_on_a_kolkata_server() -> None:
    settings = Settings()  # business timezone Asia/Kolkata
    badges = BADGES
    utc, kolkata = ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")
    assert expressions.server_schedule(badges, settings, utc, NOW) == "31 18 * * *"
    assert expressions.server_schedule(badges, settings, kolkata, NOW) == "1 0 * * *"
    # and croniter agrees: the next UTC firing is 00:01 of the next day in Kolkata
    (first, *_) = expressions.next_runs("31 18 * * *", utc, NOW)
    assert first == datetime(2026, 11, 29, 18, 31, tzinfo=utc)
    assert first.astimezone(kolkata) == datetime(2026, 11, 30, 0, 1, tzinfo=kolkata)
    # a server-time job is never converted
    prune = get_job("logs-prune")
    assert expressions.server_schedule(prune, settings, kolkata, NOW) == "0 1 * * *"


@pytest.mark.parametrize(
    ("expression", "server", "converted"),
    [
        ("1 0 * * 1", "UTC", "31 18 * * 0"),  # Monday 00:01 IST is Sunday 18:31 UTC
        ("1 0 * * 0,6", "UTC", "31 18 * * 5,6"),
        ("45 6 * * *", "UTC", "15 1 * * *"),
        ("30 20 * * *", "Asia/Tokyo", "0 0 * * *"),  # the next day in Tokyo
        ("1 0 1 * *", "Asia/Kolkata", "1 0 1 * *"),
    ],
)
def test_business_time_conversions(expression: str, server: str, converted: str) -> None:
    job = replace(BADGES, schedule=expression)
    assert expressions.server_schedule(job, Settings(), ZoneInfo(server), NOW) == converted


@pytest.mark.parametrize(
    ("business", "expression", "server", "message"),
    [
        ("Asia/Kolkata", "1 0 * * *", "Europe/London", "daylight saving time changes the offset"),
        ("America/New_York", "1 0 * * *", "UTC", "daylight saving time changes the offset"),
        ("Asia/Kolkata", "1 0 1 * *", "UTC", "falls on another day in UTC"),
        ("Asia/Kolkata", "*/5 0 * * *", "UTC", "only a schedule with one time of day"),
    ],
)
def test_conversions_that_cron_cannot_express_are_refused(
    business: str, expression: str, server: str, message: str
) -> None:
    job = replace(BADGES, schedule=expression)
    with pytest.raises(UsageError, match=message):
        expressions.server_schedule(job, Settings(timezone=business), ZoneInfo(server), NOW)


def test_the_badge_line_in_the_installed_block(tmp_path: Path, executable: Path) -> None:
    for server, expected in (("UTC", "31 18 * * *"), ("Asia/Kolkata", "1 0 * * *")):
        path = tmp_path / f"crontab-{server.replace('/', '-')}"
        args = install_args(path, tmp_path / "logs", executable)
        args[args.index("UTC")] = server
        code, _, err = cron(*args)
        assert code == 0, err
        content = path.read_text()
        assert entries(content)["badges-assign"][0] == expected
        assert "# badges-assign (1 0 * * * in Asia/Kolkata)\n" in content


def test_a_server_timezone_with_daylight_saving_is_refused_with_the_ways_out(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    args = install_args(crontab_file, tmp_path / "logs", executable)
    args[args.index("UTC")] = "America/New_York"
    code, _, err = cron(*args)
    assert code == 2
    assert "not one fixed time in America/New_York" in err
    assert "--format kubernetes" in err
    assert crontab_file.read_bytes() == FOREIGN


def test_the_machine_timezone_is_read_from_etc_localtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    localtime = tmp_path / "localtime"
    monkeypatch.setattr(expressions, "LOCALTIME", localtime)
    monkeypatch.setattr(expressions, "TIMEZONE_FILE", tmp_path / "timezone")
    assert expressions.machine_timezone() == "UTC"  # glibc's default without the file
    localtime.symlink_to("/usr/share/zoneinfo/Asia/Kolkata")
    assert expressions.machine_timezone() == "Asia/Kolkata"
    localtime.unlink()
    localtime.write_bytes(b"TZif")
    with pytest.raises(UsageError, match="--server-timezone"):
        expressions.machine_timezone()
    (tmp_path / "timezone").write_text("Europe/Paris\n")
    assert expressions.machine_timezone() == "Europe/Paris"
