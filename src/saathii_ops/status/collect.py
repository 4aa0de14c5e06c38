"""`status` (SPEC §11): reads the jobs' runs and the data, and hands them to the health
rules (`status.rules`), which make the findings (`status.findings`) of the report.

Every figure is computed by the code of the job it belongs to: the billing plan
counts the calls owing coins (`billing.count_calls`), call cleanup's end rules
the calls it would end, the badge plan the listeners without today's badge,
presence's predicates the online and busy users. The database is read in one
read-only transaction, with a handful of aggregate queries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.billing import charge as billing
from saathii_ops.db.calls import CallStatus
from saathii_ops.db.engine import database_now, disable_jit, display_url, is_sqlite, transaction
from saathii_ops.db.schema import inspect_schema, not_ready_reason
from saathii_ops.db.sql import local_date
from saathii_ops.db.tables import UTCDateTime, listener_badges, user_status
from saathii_ops.db.tables import ops_job_runs as job_runs
from saathii_ops.db.tables import ops_settlements as settlements
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.errors import DatabaseUnavailable
from saathii_ops.jobs import badges, call_cleanup, job_control, presence
from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling.expressions import last_firing, next_firing, server_timezone
from saathii_ops.scheduling.schedule_target import ScheduleTarget
from saathii_ops.scheduling.targets import CrontabTarget, installed_jobs, other_target
from saathii_ops.settings import Settings
from saathii_ops.status import rules
from saathii_ops.status.findings import BADGES_JOB, DatabaseUnreachable
from saathii_ops.status.report import (
    DatabaseHealth,
    DataHealth,
    JobHealth,
    SchemaHealth,
    StatusReport,
)


def collect(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None,
    crontab: CrontabTarget | None,
    schedule_target: ScheduleTarget | None = None,
    database_source: str | None = None,
) -> StatusReport:
    """The status at `now` (default: the database's clock). `crontab`: where to look for
    the installed block (see `scheduling.targets.installed_target`), which counts only if it
    targets `schedule_target` (this configuration and database); `database_source`: where
    the database URL came from."""
    url = display_url(engine.url)
    try:
        state = inspect_schema(engine)
    except DatabaseUnavailable as exc:
        return unreachable(exc, url, now, crontab, database_source)
    schema_problem = not_ready_reason(state)
    scheduled = None if schedule_target is None else scheduled_jobs(crontab, schedule_target)
    seen = _observe(engine, settings, now, scheduled, schema_ready=schema_problem is None)
    findings = rules.judge(
        schema_problem=schema_problem,
        read_only=seen.read_only,
        jobs=seen.jobs,
        data=seen.data,
        today=seen.today,
        badges_done_at=seen.badges_done_at,
        settings=settings,
    )
    return StatusReport(
        now=seen.now,
        healthy=not findings,
        problems=[finding.problem for finding in findings],
        database=DatabaseHealth(
            url,
            reachable=True,
            server_version=seen.version,
            error=None,
            source=database_source,
            read_only=seen.read_only,
        ),
        schema=SchemaHealth(state.current, state.head, state.at_head),
        crontab=crontab_description(crontab, schedule_target),
        badge_date=seen.today,
        jobs=seen.jobs,
        data=seen.data,
        findings=findings,
        business_timezone=settings.timezone,
    )


@dataclass
class _Observed:
    """What one read-only transaction saw of the database."""

    now: datetime
    version: str
    read_only: str | None
    jobs: list[JobHealth] = field(default_factory=list)
    data: DataHealth | None = None
    today: date | None = None
    badges_done_at: datetime | None = None


def _observe(
    engine: Engine,
    settings: Settings,
    now: datetime | None,
    scheduled: frozenset[str] | None,
    *,
    schema_ready: bool,
) -> _Observed:
    """The server, and (when the schema is ready) the jobs' and the data's health at `now`
    (default: the database's clock), from one snapshot."""
    with transaction(engine, read_only=True) as session:
        disable_jit(session)
        now = now or database_now(session)
        seen = _Observed(now, server_version(session), read_only_reason(session))
        if schema_ready:
            seen.jobs = job_health(session, settings, now, scheduled)
            seen.today = badges.business_date(now, settings)
            seen.data = data_health(session, settings, now, seen.today)
            seen.badges_done_at = last_ok_run_now(session, BADGES_JOB)
    return seen


def unreachable(
    exc: DatabaseUnavailable,
    url: str,
    now: datetime | None,
    crontab: CrontabTarget | None,
    database_source: str | None,
) -> StatusReport:
    """The report of a database that did not answer: for monitors, that it is down."""
    return StatusReport(
        now=now or datetime.now(UTC),
        healthy=False,
        problems=[str(exc)],
        database=DatabaseHealth(
            url, reachable=False, server_version=None, error=str(exc), source=database_source
        ),
        schema=None,
        crontab=crontab.description if crontab is not None else None,
        badge_date=None,
        jobs=[],
        data=None,
        findings=[DatabaseUnreachable(str(exc))],
    )


def crontab_description(
    crontab: CrontabTarget | None, schedule_target: ScheduleTarget | None
) -> str | None:
    """Where the installed block was looked for; when its block runs another target (not
    scheduled here, and `cron install` would refuse), whose it is."""
    if crontab is None:
        return None
    elsewhere = None if schedule_target is None else other_target(crontab, schedule_target)
    if elsewhere is None:
        return crontab.description
    return f"{crontab.description} (its block runs another target: {elsewhere.describe()})"


def scheduled_jobs(crontab: CrontabTarget | None, wanted: ScheduleTarget) -> frozenset[str] | None:
    """The jobs a schedule of `wanted` (this config file and database) runs: the crontab's
    block, and the systemd timers of the system's and this user's unit directories; None
    when the crontab cannot be read and no timer of `wanted` is installed."""
    from saathii_ops.scheduling import systemd

    in_crontab = installed_jobs(crontab, wanted)
    timers = frozenset().union(
        *(
            systemd.installed_jobs(directory, wanted)
            for directory in (systemd.SYSTEM_UNITS, systemd.user_units_directory())
        )
    )
    if in_crontab is None:
        return timers or None
    return in_crontab | timers


def server_version(session: Session) -> str:
    query = "SELECT sqlite_version()" if is_sqlite(session) else "SHOW server_version"
    return str(session.execute(sa.text(query)).scalar_one())


def read_only_reason(session: Session) -> str | None:
    """Why no job could write to the database, in a few words; None when they can.

    PostgreSQL: a server in recovery (a hot standby, a restore), or
    default_transaction_read_only on (for the server, the database or our role), read in
    status's own read-only transaction, where only the default says what a job's
    transaction would be. SQLite: a database file this user may not write."""
    if is_sqlite(session):
        database = session.get_bind().engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if path.exists() and not os.access(path, os.W_OK):
                return f"this user may not write the file {path}"
        return None
    in_recovery, default_read_only = session.execute(
        sa.text("SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')")
    ).one()
    if in_recovery:
        return "the server is in recovery, pg_is_in_recovery(): a standby, or a restore"
    if default_read_only == "on":
        return "default_transaction_read_only = on"
    return None


# --- the jobs -----------------------------------------------------------------------


def job_health(
    session: Session, settings: Settings, now: datetime, scheduled: frozenset[str] | None
) -> list[JobHealth]:
    """Every registered job: its pause switch and runs (`job_control.list_jobs`), whether
    the installed cron block has it, when it was due and will run next, whether it is late."""
    business_time = {job.name: job.business_time for job in JOBS}
    server_tz: ZoneInfo | None = None
    health = []
    for state in job_control.list_jobs(session, settings):
        if business_time[state.job]:
            tz = settings.business_tz
        else:
            server_tz = server_tz or server_timezone(None, settings)
            tz = server_tz
        due = last_firing(state.schedule, tz, now - rules.OVERDUE_GRACE)
        known = {f.name: getattr(state, f.name) for f in fields(state)}
        health.append(
            JobHealth(
                **{**known, "timezone": tz.key},  # the server's timezone named, not "server"
                scheduled=None if scheduled is None else state.job in scheduled,
                never_run=state.last_started_at is None,
                due_at=due,
                next_run_at=next_firing(state.schedule, tz, now),
                overdue=rules.is_overdue(
                    paused=state.paused, last_run_now=state.last_run_now, due_at=due
                ),
                last_run_failed=state.last_outcome == "failed",
                last_exit_code=None
                if state.last_outcome is None
                else job_control.recorded_exit_code(
                    state.last_outcome, state.last_reason, state.last_error
                ),
            )
        )
    return health


# --- the data -----------------------------------------------------------------------


def data_health(session: Session, settings: Settings, now: datetime, today: date) -> DataHealth:
    def count(source: sa.FromClause, where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
        return sa.select(sa.func.count()).select_from(source).where(where).scalar_subquery()

    badge_plan = badges.plan(today, settings)
    cutoff = presence.inactive_cutoff(now, settings)
    presence_due = sa.or_(
        presence.inactive_online(cutoff), presence.wait_time_expired(), presence.busy_without_call()
    )
    online, busy, offline_seen, ongoing, without_badge, negative, presence_due_users = (
        session.execute(
            sa.select(
                count(user_status, presence.online()),
                count(user_status, presence.busy()),
                count(user_status, presence.offline_but_seen(cutoff)),
                count(calls, calls.c.status == CallStatus.ONGOING),
                # the badge job's own eligibility; a row for today already there is replaced
                count(badge_plan, badge_plan.c.replaces.is_(None)),
                # no index: one on balance_coins would cost every wallet update its HOT update
                count(wallets, wallets.c.balance_coins < 0),
                # presence cleanup's own rules, each user once
                count(user_status, presence_due),
            )
        ).one()
    )
    billed_now = billing.count_calls(session, now, settings)
    billed_before = billing.count_calls(session, now - billing.BILLING_GRACE, settings)
    cleanup = billing.count_calls(
        session, now, settings, end_rules=call_cleanup.end_rules(now, settings)
    )
    return DataHealth(
        online_users=online,
        busy_users=busy,
        offline_seen_users=offline_seen,
        ongoing_calls=ongoing,
        owing_calls=billed_now.owing,
        billing_behind_calls=billed_before.owing,
        unbillable_calls=billed_now.unbillable,
        cleanup_due_calls=cleanup.expired,
        listeners_without_badge=without_badge,
        calls_settled_without_badge=settled_without_badge(session, settings, today),
        presence_due_users=presence_due_users,
        negative_balance_wallets=negative,
    )


def settled_without_badge(session: Session, settings: Settings, today: date) -> int:
    """Calls settled on business day `today` whose listener had no listener_badges row for
    the call's business date when it was settled (settlement then pays basic rates).

    "When" is the settlement's instant, the call's end_time it wrote (the run's now, as
    status's is), against the badge row's created_at (an upsert keeps it; assigned_at moves).
    Read along ix_user_calls_start_time: a call settled today started at most the longest
    call before today began (an older one is ended by cleanup's max-duration rule first)."""
    start, end = badges.business_day(today, settings)
    earliest_start = start - timedelta(minutes=settings.call_max_minutes)
    made_at = sa.func.coalesce(listener_badges.c.created_at, listener_badges.c.assigned_at)
    badge_row = (
        sa.select(listener_badges.c.listener_id)
        .where(
            listener_badges.c.listener_id == calls.c.listener_id,
            listener_badges.c.date == local_date(calls.c.start_time, settings.timezone),
            # a row the app made without a time is taken to have been there
            sa.or_(made_at.is_(None), made_at <= settlements.c.end_time),
        )
        .exists()
    )
    query = (
        sa.select(sa.func.count())
        .select_from(settlements.join(calls, calls.c.call_id == settlements.c.call_id))
        .where(
            calls.c.start_time >= sa.literal(earliest_start, UTCDateTime()),
            calls.c.start_time < sa.literal(end, UTCDateTime()),
            settlements.c.end_time >= sa.literal(start, UTCDateTime()),
            settlements.c.end_time < sa.literal(end, UTCDateTime()),
            ~badge_row,
        )
    )
    return int(session.execute(query).scalar_one())


def last_ok_run_now(session: Session, job_name: str) -> datetime | None:
    """The instant the job's newest successful run worked as of; None: it never had one."""
    value = session.execute(
        sa.select(sa.func.max(job_runs.c.run_now)).where(
            job_runs.c.job == job_name, job_runs.c.outcome == "ok"
        )
    ).scalar_one()
    assert value is None or isinstance(value, datetime)
    return value
