"""Cron expressions (SPEC §10): validation, each job's expression, the server's timezone,
and rewriting a business-time schedule for the server's clock.

Libraries, not hand-written parsers: croniter and python-crontab both validate
every expression (croniter alone accepts forms cron does not: seconds, `L`,
`#`); croniter computes run times.

Time zones: cron reads a schedule in the server's timezone. A business-time
job (badges-assign, 00:01 in Asia/Kolkata) is rewritten for the server's
timezone (18:31 the previous day for a server in UTC). That is exact only
while the two zones keep one offset between them at every firing: install
checks every firing of the coming year and refuses when daylight saving time
breaks it (CRON_TZ would do, but not every cron honours it), naming the ways
out: run cron in UTC or in the business timezone, or use Kubernetes
CronJobs, which take a timeZone (docs/decisions.md#scheduling).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter
from crontab import CronSlices

from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import JOBS, ScheduledCommand
from saathii_ops.settings import Settings, known_timezone

LOCALTIME = Path("/etc/localtime")

TIMEZONE_FILE = Path("/etc/timezone")

NEXT_RUNS = 3


def valid_expression(expression: str) -> bool:
    """A five-field cron expression (or @daily & co.) that both libraries accept."""
    return bool(CronSlices.is_valid(expression)) and croniter.is_valid(expression)


def job_schedule(job: ScheduledCommand, settings: Settings) -> str:
    """The job's cron expression: `schedules.<job>` from the settings, else the registry's.

    Read in the business timezone for a business-time job, the server's otherwise.
    """
    unknown = sorted(set(settings.schedules) - {j.name for j in JOBS})
    if unknown:
        known = ", ".join(j.name for j in JOBS)
        raise UsageError(
            f"invalid configuration: schedules: unknown job {unknown[0]!r}; known jobs: {known}"
        )
    expression = settings.schedules.get(job.name, job.schedule)
    if not valid_expression(expression):
        raise UsageError(
            f"invalid configuration: schedules.{job.name}: {expression!r} is not a valid "
            "cron expression (five fields: minute hour day-of-month month day-of-week)"
        )
    return expression


def machine_timezone() -> str:
    """The timezone cron's daemon runs in: /etc/localtime (a link into the zoneinfo
    database), else /etc/timezone; UTC when there is no /etc/localtime at all (glibc's
    default). The TZ variable of this shell is not cron's, so it is not read."""
    if not LOCALTIME.exists():
        return "UTC"
    target = os.path.realpath(LOCALTIME)
    if "/zoneinfo/" in target:
        return target.split("/zoneinfo/", 1)[1]
    if TIMEZONE_FILE.exists():
        return TIMEZONE_FILE.read_text(encoding="utf-8").strip()
    raise UsageError(
        f"cannot tell this machine's timezone from {LOCALTIME} or {TIMEZONE_FILE}: "
        "give it with --server-timezone or the server_timezone setting"
    )


def server_timezone(option: str | None, settings: Settings) -> ZoneInfo:
    """--server-timezone, else the server_timezone setting, else this machine's."""
    name = option or settings.server_timezone or machine_timezone()
    try:
        return known_timezone(name)
    except ValueError as exc:
        raise UsageError(f"--server-timezone: {exc}") from None


def server_schedule(
    job: ScheduledCommand, settings: Settings, server_tz: ZoneInfo, now: datetime
) -> str:
    """The job's expression as cron in `server_tz` must read it."""
    expression = job_schedule(job, settings)
    business_tz = settings.business_tz
    if not job.business_time or business_tz.key == server_tz.key:
        return expression
    minutes, hours, days, months, weekdays = croniter(expression).expanded
    if len(minutes) != 1 or len(hours) != 1 or "*" in (minutes[0], hours[0]):
        raise UsageError(
            f"{job.name}: {expression!r} is read in {business_tz.key}; cron here runs in "
            f"{server_tz.key}, and only a schedule with one time of day can be converted"
        )
    shift = _fixed_offset(job, expression, business_tz, server_tz, now)
    day_shift, minute_of_day = divmod(int(hours[0]) * 60 + int(minutes[0]) + shift, 24 * 60)
    if day_shift and (days != ["*"] or months != ["*"]):
        raise UsageError(
            f"{job.name}: {expression!r} in {business_tz.key} falls on another day in "
            f"{server_tz.key}, which a schedule naming days of the month cannot express"
        )
    if weekdays != ["*"]:
        weekdays = [str(day) for day in sorted((int(d) + day_shift) % 7 for d in weekdays)]
    hour, minute = divmod(minute_of_day, 60)
    converted = " ".join([str(minute), str(hour), *map(_field, (days, months, weekdays))])
    assert valid_expression(converted), converted
    return converted


def _field(values: list[str]) -> str:
    return "*" if values == ["*"] else ",".join(str(v) for v in values)


def _fixed_offset(
    job: ScheduledCommand,
    expression: str,
    business_tz: ZoneInfo,
    server_tz: ZoneInfo,
    now: datetime,
) -> int:
    """Minutes to add to a business time to get the server's, the same at every firing
    of the coming year; refuses when daylight saving time changes it."""
    firings = croniter(expression, now.astimezone(business_tz))
    year_end = now + timedelta(days=366)
    shifts: set[timedelta] = set()
    while (firing := firings.get_next(datetime)) < year_end:
        business_offset = firing.utcoffset()
        server_offset = firing.astimezone(server_tz).utcoffset()
        assert business_offset is not None and server_offset is not None
        shifts.add(server_offset - business_offset)
    if len(shifts) != 1:
        raise UsageError(
            f"{job.name} runs at {expression!r} in {business_tz.key}, which is not one fixed "
            f"time in {server_tz.key}: daylight saving time changes the offset between them. "
            "Run cron in UTC or in the business timezone (--server-timezone says which), "
            "or use --format kubernetes (CronJobs take a timeZone)"
        )
    (shift,) = shifts
    return int(shift.total_seconds()) // 60


def next_runs(
    expression: str, server_tz: ZoneInfo, now: datetime, count: int = NEXT_RUNS
) -> list[datetime]:
    """The next firings of a server-time expression after `now`, in the server's timezone."""
    firings = croniter(expression, now.astimezone(server_tz))
    return [firings.get_next(datetime) for _ in range(count)]


def last_firing(expression: str, tz: ZoneInfo, moment: datetime) -> datetime:
    """The latest firing of `expression` read in `tz` at or before `moment`, in UTC."""
    # croniter's get_prev is strictly before its start: start a microsecond later
    start = moment.astimezone(tz) + timedelta(microseconds=1)
    return croniter(expression, start).get_prev(datetime).astimezone(UTC)


def next_firing(expression: str, tz: ZoneInfo, moment: datetime) -> datetime:
    """The first firing of `expression` read in `tz` strictly after `moment`, in UTC."""
    (firing,) = next_runs(expression, tz, moment, count=1)
    return firing.astimezone(UTC)


INTERVAL_SAMPLE = 500  # firings looked at for a schedule's shortest interval


def shortest_interval_seconds(expression: str, tz: ZoneInfo, now: datetime) -> int:
    """The shortest time between two firings of `expression` in the coming year."""
    firings = croniter(expression, now.astimezone(tz))
    year_end = now + timedelta(days=366)
    previous = firings.get_next(datetime)
    shortest: timedelta | None = None
    for _ in range(INTERVAL_SAMPLE):
        firing = firings.get_next(datetime)
        gap = firing - previous
        shortest = gap if shortest is None else min(shortest, gap)
        if firing > year_end:
            break
        previous = firing
    assert shortest is not None
    return int(shortest.total_seconds())
