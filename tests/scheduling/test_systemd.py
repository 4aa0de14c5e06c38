"""`cron install --format systemd` (SPEC §10): a .service and a .timer per job that
`systemd-analyze verify` accepts, whose timers fire when the cron expressions do (checked
with `systemd-analyze calendar` against croniter), badges at 00:01 Asia/Kolkata; --dry-run
prints them; `cron remove --format systemd` removes exactly those. No systemd runs here:
the units are written to a directory and checked as files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling import systemd
from tests.conftest import Cli

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)
ITERATIONS = 6


def install(units: Path, executable: Path, *options: str, config: Path | None = None) -> str:
    result = Cli(None)(
        *(["--config", str(config)] if config else []),
        "--now", NOW.isoformat(),
        "cron", "install", "--format", "systemd", "--directory", str(units),
        "--executable", str(executable), *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def unit_setting(text: str, key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", text, re.M)
    return value


@needs_analyze
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path, executable: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("call_stale_minutes = 12\n")
    env_file = tmp_path / "ops 100% env"
    env_file.write_text("SAATHII_DATABASE_URL=postgresql://ops:pw@db/saathii\n")
    units = tmp_path / "units"
    out = install(
        units, executable, "--env-file", str(env_file), "--user", "saathii", config=config
    )
    names = sorted(p.name for p in units.iterdir())
    assert names == sorted(
        f"saathii-ops-{job.name}.{kind}" for job in JOBS for kind in ("service", "timer")
    )
    assert out.startswith(f"wrote {len(names)} units into {units}; to start the timers:\n")
    done = subprocess.run(
        [ANALYZE, "verify", *(str(units / name) for name in names)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "saathii-ops" not in done.stdout + done.stderr, done.stdout + done.stderr
    for job in JOBS:
        service = (units / f"saathii-ops-{job.name}.service").read_text()
        # the cron line's command and configuration by reference; output to journald
        assert unit_setting(service, "ExecStart") == (
            f"{executable} --config {config} {job.command}"
        )
        assert unit_setting(service, "EnvironmentFile") == str(env_file).replace("%", "%%")
        assert unit_setting(service, "Type") == "oneshot"
        assert unit_setting(service, "User") == "saathii"
        assert unit_setting(service, "SyslogIdentifier") == f"saathii-ops-{job.name}"
        assert "StandardOutput" not in service and ">>" not in service
        timer = (units / f"saathii-ops-{job.name}.timer").read_text()
        assert unit_setting(timer, "Unit") == f"saathii-ops-{job.name}.service"
        assert unit_setting(timer, "Persistent") == "true"
    assert "pw@" not in "".join(p.read_text() for p in units.iterdir())


def next_elapses(calendar: str, count: int) -> list[datetime]:
    """systemd's next `count` elapses of an OnCalendar= expression after NOW, in UTC."""
    done = subprocess.run(
        [
            ANALYZE,  # type: ignore[list-item]
            "calendar",
            f"--iterations={count}",
            f"--base-time={NOW:%Y-%m-%d %H:%M:%S} UTC",
            calendar,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TZ": "UTC"},  # the machine's clock read as UTC
    )
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", done.stdout)
    assert len(stamps) == count, done.stdout
    return [datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps]


def croniter_runs(expression: str, tz: str, count: int) -> list[datetime]:
    runs = croniter(expression, NOW.astimezone(ZoneInfo(tz)))
    return [runs.get_next(datetime).astimezone(UTC) for _ in range(count)]


@needs_analyze
def test_each_timer_fires_when_its_cron_expression_does(tmp_path: Path, executable: Path) -> None:
    units = tmp_path / "units"
    install(units, executable)
    for job in JOBS:
        timer = (units / f"saathii-ops-{job.name}.timer").read_text()
        calendar = unit_setting(timer, "OnCalendar")
        # machine time is UTC here (TZ=UTC), the business timezone is named
        tz = "Asia/Kolkata" if job.business_time else "UTC"
        assert next_elapses(calendar, ITERATIONS) == croniter_runs(job.schedule, tz, ITERATIONS)
    badges = (units / "saathii-ops-badges-assign.timer").read_text()
    assert unit_setting(badges, "OnCalendar") == "*-*-* 00:01:00 Asia/Kolkata"
    # 00:01 in Kolkata is 18:31 UTC the day before
    assert next_elapses("*-*-* 00:01:00 Asia/Kolkata", 1) == [
        datetime(2026, 11, 29, 18, 31, tzinfo=UTC)
    ]


@needs_analyze
@pytest.mark.parametrize(
    "expression",
    [
        "*/10 * * * *",
        "0,5 * * * *",
        "30 4 * * 1",
        "15 */6 1 * *",
        "0 9 * * 1-5",
        "0 0 * * 0",
        "5 4 1 1,7 *",
        "@hourly",
    ],
)
def test_cron_expressions_become_equal_calendars(expression: str) -> None:
    calendar = systemd.on_calendar(expression)
    assert next_elapses(calendar, ITERATIONS) == croniter_runs(expression, "UTC", ITERATIONS)
    business = systemd.on_calendar(expression, "Asia/Kolkata")
    assert next_elapses(business, ITERATIONS) == croniter_runs(
        expression, "Asia/Kolkata", ITERATIONS
    )


def test_a_day_of_month_with_weekdays_is_refused() -> None:
    """cron runs on either, a timer only on both: not silently something else."""
    with pytest.raises(UsageError, match="names both days of the month and weekdays"):
        systemd.on_calendar("0 0 1 * 1")


def test_a_dry_run_prints_the_units_and_writes_nothing(tmp_path: Path, executable: Path) -> None:
    units = tmp_path / "units"
    out = install(units, executable, "--dry-run", "--user", "saathii")
    assert not units.exists()
    sections = re.split(r"^# (/\S+)\n", out, flags=re.M)[1:]
    printed = dict(zip(sections[::2], sections[1::2], strict=True))
    assert sorted(printed) == sorted(
        f"{units}/saathii-ops-{job.name}.{kind}" for job in JOBS for kind in ("service", "timer")
    )
    service = printed[f"{units}/saathii-ops-coins-deduct.service"]
    assert unit_setting(service, "User") == "saathii"
    assert service.startswith(systemd.MARKER + "\n")
    assert install(units, executable, "--user", "saathii")
    for path, text in printed.items():
        assert Path(path).read_text() + "\n" == text


def test_remove_removes_exactly_those_units(tmp_path: Path, executable: Path) -> None:
    units = tmp_path / "units"
    install(units, executable)
    # someone else's units beside them, one with a name like ours, and an enable link
    (units / "backup.timer").write_text("[Timer]\nOnCalendar=daily\n")
    (units / "saathii-ops-web.service").write_text("[Service]\nExecStart=/bin/true\n")
    wants = units / "timers.target.wants"
    wants.mkdir()
    (wants / "saathii-ops-coins-deduct.timer").symlink_to(units / "saathii-ops-coins-deduct.timer")
    (wants / "backup.timer").symlink_to(units / "backup.timer")

    dry = Cli(None)("cron", "remove", "--format", "systemd", "--directory", str(units), "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.startswith(f"would remove from {units}: saathii-ops-coins-deduct.timer ")
    assert len(list(units.glob("saathii-ops-*"))) == 2 * len(JOBS) + 1

    done = Cli(None)("--json", "cron", "remove", "--format", "systemd", "--directory", str(units))
    assert done.exit_code == 0, done.stderr
    removed = json.loads(done.stdout)["removed"]
    assert len(removed) == 2 * len(JOBS)
    assert sorted(p.name for p in units.iterdir()) == [
        "backup.timer",
        "saathii-ops-web.service",
        "timers.target.wants",
    ]
    assert [p.name for p in wants.iterdir()] == ["backup.timer"]
    again = Cli(None)("cron", "remove", "--format", "systemd", "--directory", str(units))
    assert again.stdout == f"no saathii-ops units in {units}: nothing changed\n"


def test_units_of_another_config_are_not_replaced_without_force(
    tmp_path: Path, executable: Path
) -> None:
    production = tmp_path / "ops.toml"
    production.write_text("")
    units = tmp_path / "units"
    install(units, executable, config=production)
    before = {p.name: p.read_text() for p in units.iterdir()}
    result = Cli(None)(
        "cron", "install", "--format", "systemd", "--directory", str(units),
        "--executable", str(executable),
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {units}/saathii-ops-")
    assert f"runs another target (--config {production}, database the one its" in result.stderr
    assert "give --force to replace it" in result.stderr
    assert {p.name: p.read_text() for p in units.iterdir()} == before
    install(units, executable, "--force")
    assert "--config" not in (units / "saathii-ops-coins-deduct.service").read_text()


def test_status_counts_the_timers_of_its_own_target(
    cli: Cli, tmp_path: Path, executable: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_units = tmp_path / "system-units"
    monkeypatch.setattr(systemd, "SYSTEM_UNITS", system_units)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))

    def scheduled(*options: str) -> set[bool | None]:
        result = cli(*options, "--json", "status", "--crontab-file", str(tmp_path / "none"))
        return {job["scheduled"] for job in json.loads(result.stdout)["jobs"]}

    assert scheduled() == {False}
    production = tmp_path / "ops.toml"
    production.write_text("")
    result = Cli(db_url)(
        "--config", str(production), "cron", "install", "--format", "systemd",
        "--directory", str(system_units), "--executable", str(executable),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert scheduled("--config", str(production)) == {True}
    assert scheduled() == {False}  # another configuration's timers
