"""`status` (SPEC §11): the health of the jobs and of the data, for people and monitors.

Every figure is computed by the code of the job it belongs to: the billing plan
counts the calls owing coins (`billing.count_calls`), call cleanup's end rules
the calls it would end, the badge plan the listeners without today's badge,
presence's predicates the online and busy users. The database is read in one
read-only transaction, with a handful of aggregate queries.

Health rules (the choices the SPEC leaves open: docs/decisions.md#status):
- a job is overdue when it has run before, is not paused, and its last run
  worked as of an instant before F, the most recent firing of its schedule at
  or before now - OVERDUE_GRACE. "Worked as of" is the run's `run_now` (the database
  clock at the start of a scheduled run, equal to its started_at; the given
  instant of a `--now` run), so that `status --now T` judges runs made with
  `--now T` (the demo's) as the jobs saw them. A job that never ran is reported
  as never run, not as a problem: it may simply not be installed yet.
- a job whose last run failed;
- a job whose last run found rows it could not process or, for wallets-audit,
  anything wrong (the run exited 1: "some rows failed"), such as a billing run
  that skipped calls the app half-ended, or an audit that found a call the app
  ended again after we settled it;
- billing behind: ongoing calls that still owe coins for minutes that started
  before now - billing.BILLING_GRACE (the billing plan evaluated at that instant): coin
  deduction runs every minute, so owing for the current minute is normal;
- ongoing calls billing cannot bill (both jobs skip them, and coin deduction
  exits 1 on every run while its runs are recorded as 'ok');
- a paused job with work waiting (calls cleanup with calls to end, presence cleanup
  with users to mark, badges assign with listeners without today's badge);
- no badge for today once today's badges-assign firing (and the grace) has passed
  with no successful run as of it since, with the calls settled at basic rates for
  want of a badge row;
- a database no job can write to (read-only, or in recovery);
- the schema not at head (then the jobs and the data are not read: the
  queries need the head schema);
- the database unreachable (exit 3; the report still says so, for monitors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.billing import charge as billing
from saathii_ops.db.engine import database_now, disable_jit, display_url, is_sqlite, transaction
from saathii_ops.db.models import (
    SOME_ROWS_FAILED,
    JobRun,
    ListenerBadge,
    Settlement,
    UserCall,
    UserStatus,
    UserWallet,
    UTCDateTime,
    table,
)
from saathii_ops.db.schema import inspect_schema, not_ready_reason
from saathii_ops.db.sql import local_date
from saathii_ops.errors import DatabaseUnavailable, ExitCode
from saathii_ops.jobs import badges, call_cleanup, job_control, presence
from saathii_ops.jobs.job_control import JobState
from saathii_ops.output.text import count_name, plural
from saathii_ops.reports import INTERNAL, Report
from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling.expressions import server_timezone
from saathii_ops.scheduling.schedule_target import ScheduleTarget
from saathii_ops.scheduling.targets import CrontabTarget, installed_jobs, other_target
from saathii_ops.settings import Settings

# A run starts a few seconds after its firing and takes a few more; two minutes
# absorb that (and a clock a little apart), while an every-minute job that stops
# firing is reported from its second missed firing on.
OVERDUE_GRACE = timedelta(minutes=2)


def _billing_grace_minutes() -> int:
    return int(billing.BILLING_GRACE.total_seconds()) // 60


calls = table(UserCall)
user_status = table(UserStatus)
wallets = table(UserWallet)
listener_badges = table(ListenerBadge)
settlements = table(Settlement)
job_runs = table(JobRun)


@dataclass
class DatabaseHealth:
    url: str  # without its password
    reachable: bool
    server_version: str | None
    error: str | None
    source: str | None = None  # where the URL came from (SPEC §2)
    # why no job can write to it: None when it can (or it could not be read)
    read_only: str | None = None


@dataclass
class SchemaHealth:
    current: str | None
    head: str
    at_head: bool


@dataclass
class JobHealth(JobState):
    """A job's state (`job_control.JobState`), and what status judges of it."""

    scheduled: bool | None  # a line in the installed cron block; None: no crontab to read
    never_run: bool
    due_at: datetime  # F: the latest firing a run should have followed by now
    next_run_at: datetime
    overdue: bool
    last_run_failed: bool
    last_exit_code: int | None  # what the last run exited with; None: it never ran

    @property
    def last_run_exited_1(self) -> bool:
        """An ok run with rows it could not process (or, for the audit, findings)."""
        return self.last_outcome == "ok" and self.last_reason == SOME_ROWS_FAILED


def _figure(description: str) -> dict[str, str]:
    return {"description": description}


@dataclass
class DataHealth:
    """The figures of the data (each an int, described for people and for Prometheus)."""

    online_users: int = field(metadata=_figure("users marked online"))
    busy_users: int = field(metadata=_figure("users marked busy"))
    offline_seen_users: int = field(
        metadata=_figure(
            "users marked offline but seen within the inactive limit (the app's heartbeat "
            "never sets is_online again: not a problem by itself)"
        )
    )
    ongoing_calls: int = field(metadata=_figure("ongoing calls"))
    owing_calls: int = field(
        metadata=_figure("ongoing calls owing coins now (coins deduct bills them)")
    )
    billing_behind_calls: int = field(
        metadata=_figure(
            "ongoing calls owing coins for minutes that started over "
            f"{_billing_grace_minutes()} minutes ago (billing is behind)"
        )
    )
    unbillable_calls: int = field(
        metadata=_figure(
            "ongoing calls billing cannot bill (half-ended by the app, settled before, unknown "
            "call type, negative coins spent, no listener)"
        )
    )
    cleanup_due_calls: int = field(
        metadata=_figure("ongoing calls that calls cleanup would end now")
    )
    listeners_without_badge: int = field(
        metadata=_figure("active listeners without a badge for today (business date)")
    )
    calls_settled_without_badge: int = field(
        metadata=_figure(
            "calls settled today (business date) at basic rates because their listener had "
            "no badge row for the call's date"
        )
    )
    presence_due_users: int = field(
        metadata=_figure("users presence cleanup would mark offline or clear of busy now")
    )
    negative_balance_wallets: int = field(metadata=_figure("wallets with a negative balance"))


@dataclass
class Finding:
    """A problem, and what to do about it (for people; `problems` is the text alone)."""

    problem: str
    todo: str | None = None


@dataclass
class StatusReport(Report):
    now: datetime
    healthy: bool
    problems: list[str]
    database: DatabaseHealth
    schema: SchemaHealth | None
    crontab: str | None  # where the installed cron block was looked for; None: nowhere
    badge_date: date | None  # "today" in the business timezone
    jobs: list[JobHealth]
    data: DataHealth | None
    # each problem with what to do, in the same order
    findings: list[Finding] = field(default_factory=list, metadata=INTERNAL)
    # the zone `badge_date` is "today" in, for people
    business_timezone: str | None = field(default=None, metadata=INTERNAL)

    @property
    def exit_code(self) -> ExitCode:
        """SPEC §9: the database unreachable, something unhealthy, else OK."""
        if not self.database.reachable:
            return ExitCode.UNAVAILABLE
        return ExitCode.OK if self.healthy else ExitCode.FAILED


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
    crontab_source = crontab.description if crontab is not None else None
    try:
        state = inspect_schema(engine)
    except DatabaseUnavailable as exc:
        return StatusReport(
            now=now or datetime.now(UTC),
            healthy=False,
            problems=[str(exc)],
            database=DatabaseHealth(
                url, reachable=False, server_version=None, error=str(exc), source=database_source
            ),
            schema=None,
            crontab=crontab_source,
            badge_date=None,
            jobs=[],
            data=None,
            findings=[Finding(str(exc))],
        )
    findings: list[Finding] = []
    schema_problem = not_ready_reason(state)
    if schema_problem is not None:
        findings.append(Finding(f"{schema_problem} (jobs and data not read until then)"))
    scheduled = None if schedule_target is None else scheduled_jobs(crontab, schedule_target)
    elsewhere = None if schedule_target is None else other_target(crontab, schedule_target)
    if crontab_source is not None and elsewhere is not None:
        # not scheduled here, and `cron install` would refuse: say whose the block is
        crontab_source += f" (its block runs another target: {elsewhere.describe()})"

    with transaction(engine, read_only=True) as session:
        disable_jit(session)
        now = now or database_now(session)
        version = server_version(session)
        read_only = read_only_reason(session)
        jobs: list[JobHealth] = []
        data = None
        today = None
        badges_done_at: datetime | None = None
        if schema_problem is None:
            jobs = job_health(session, settings, now, scheduled)
            today = badges.business_date(now, settings)
            data = data_health(session, settings, now, today)
            badges_done_at = last_ok_run_now(session, BADGES_JOB)

    if read_only is not None:
        findings.append(
            Finding(
                f"the database is read-only ({read_only}): every job's run fails (exit 3) "
                "and nothing is billed, ended or recorded",
                "point saathii-ops at the primary (a writable database)",
            )
        )
    findings += [finding for job in jobs for finding in job_problems(job)]
    if data is not None:
        findings += data_problems(data, jobs)
        findings += paused_with_work(data, jobs)
        assert today is not None
        findings += badge_problems(data, jobs, today, badges_done_at, settings)
    return StatusReport(
        now=now,
        healthy=not findings,
        problems=[finding.problem for finding in findings],
        database=DatabaseHealth(
            url,
            reachable=True,
            server_version=version,
            error=None,
            source=database_source,
            read_only=read_only,
        ),
        schema=SchemaHealth(state.current, state.head, state.at_head),
        crontab=crontab_source,
        badge_date=today,
        jobs=jobs,
        data=data,
        findings=findings,
        business_timezone=settings.timezone,
    )


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
        due = last_firing(state.schedule, tz, now - OVERDUE_GRACE)
        overdue = not state.paused and state.last_run_now is not None and state.last_run_now < due
        known = {f.name: getattr(state, f.name) for f in fields(state)}
        health.append(
            JobHealth(
                **{**known, "timezone": tz.key},  # the server's timezone named, not "server"
                scheduled=None if scheduled is None else state.job in scheduled,
                never_run=state.last_started_at is None,
                due_at=due,
                next_run_at=next_firing(state.schedule, tz, now),
                overdue=overdue,
                last_run_failed=state.last_outcome == "failed",
                last_exit_code=None
                if state.last_outcome is None
                else job_control.recorded_exit_code(
                    state.last_outcome, state.last_reason, state.last_error
                ),
            )
        )
    return health


def last_firing(expression: str, tz: ZoneInfo, moment: datetime) -> datetime:
    """The latest firing of a cron expression read in `tz` at or before `moment`, in UTC."""
    # croniter's get_prev is strictly before its start: start a microsecond later
    start = moment.astimezone(tz) + timedelta(microseconds=1)
    return croniter(expression, start).get_prev(datetime).astimezone(UTC)


def next_firing(expression: str, tz: ZoneInfo, moment: datetime) -> datetime:
    """The first firing strictly after `moment`, in UTC."""
    return croniter(expression, moment.astimezone(tz)).get_next(datetime).astimezone(UTC)


# The counts of a run that name what made it exit 1 (billing's skipped calls, the
# audit's findings), quoted by the problem `status` reports.
FINDING_COUNTS = (
    "skipped_calls",
    "half_ended_calls",
    "wallets_off",
    "calls_changed_after_settlement",
    "calls_ended_again_after_half_end",
    "calls_half_ended",
    "calls_overcharged",
    "calls_undercharged",
)


def job_problems(job: JobHealth) -> list[Finding]:
    findings = []
    run_it = f"`saathii-ops {job.command}` runs it now"
    if job.overdue:
        assert job.last_run_now is not None
        if job.scheduled:
            todo = f"cron has it: see cron's log and `saathii-ops jobs history {job.job}`; {run_it}"
        else:
            todo = f"`saathii-ops cron install` schedules it; {run_it}"
        findings.append(
            Finding(
                f"{job.job} is overdue: due at {_moment(job.due_at)} ({job.schedule} in "
                f"{job.timezone}), last ran as of {_moment(job.last_run_now)}",
                todo,
            )
        )
    if job.last_run_failed:
        assert job.last_started_at is not None
        findings.append(
            Finding(
                f"{job.job}'s last run failed (at {_moment(job.last_started_at)}): "
                f"{job.last_error}",
                f"`saathii-ops jobs history {job.job} --failed` lists its failures; "
                f"`saathii-ops -v {job.command} --dry-run` shows the traceback",
            )
        )
    if job.last_run_exited_1:
        assert job.last_started_at is not None
        found = ", ".join(
            f"{count_name(name)} {value}"
            for name, value in (job.last_counts or {}).items()
            if name in FINDING_COUNTS and value
        )
        findings.append(
            Finding(
                f"{job.job}'s last run (at {_moment(job.last_started_at)}) exited 1: {found}",
                f"`saathii-ops {job.command} --dry-run` names each",
            )
        )
    return findings


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
                count(calls, calls.c.status == "ongoing"),
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


def data_problems(data: DataHealth, jobs: list[JobHealth]) -> list[Finding]:
    findings = []
    if data.billing_behind_calls:
        coins_deduct = next((job for job in jobs if job.job == BILLING_JOB), None)
        n = data.billing_behind_calls
        behind = (
            f"{plural(n, 'ongoing call')} {'owes' if n == 1 else 'owe'} coins for minutes "
            f"that started over {_billing_grace_minutes()} minutes ago"
        )
        cause = billing_cause(coins_deduct) if coins_deduct else None
        if coins_deduct is not None and coins_deduct.paused:
            todo = f"`saathii-ops jobs resume {BILLING_JOB}`: its next run bills what is owed"
        else:
            todo = "`saathii-ops coins deduct` bills them now"
        if cause:
            findings.append(Finding(f"billing is behind because {cause}: {behind}", todo))
        else:
            findings.append(
                Finding(f"billing is behind: {behind} (is {BILLING_JOB} running?)", todo)
            )
    if data.unbillable_calls:
        findings.append(
            Finding(
                f"{plural(data.unbillable_calls, 'ongoing call')} cannot be billed (half-ended "
                "by the app, settled before, or bad rows: `coins deduct --dry-run` names each): "
                "coins deduct skips them",
                "docs/running-beside-the-app.md says what to do with each kind",
            )
        )
    return findings


BILLING_JOB = "coins-deduct"
BADGES_JOB = "badges-assign"

# What a paused job leaves undone, by job: the figure that counts it and its words.
# (A paused coins-deduct is billing behind, above; wallets-audit and logs-prune have no
# waiting work to count.)
WAITING_WORK = {
    "calls-cleanup": ("cleanup_due_calls", "ongoing call", "it would end now"),
    "presence-cleanup": (
        "presence_due_users",
        "user",
        "it would mark offline or clear of busy now",
    ),
    BADGES_JOB: ("listeners_without_badge", "active listener", "without a badge for today"),
}


def _paused_since(job: JobHealth) -> str:
    text = f"paused since {_moment(job.paused_at) if job.paused_at else '?'} by {job.paused_by}"
    return f"{text}: {job.paused_reason}" if job.paused_reason else text


def paused_with_work(data: DataHealth, jobs: list[JobHealth]) -> list[Finding]:
    """A paused job with work waiting: the work piles up on every host until it is resumed."""
    findings = []
    for job in jobs:
        if not job.paused or job.job not in WAITING_WORK:
            continue
        figure, noun, what = WAITING_WORK[job.job]
        waiting = getattr(data, figure)
        if waiting:
            findings.append(
                Finding(
                    f"{job.job} is {_paused_since(job)}, with work waiting: "
                    f"{plural(waiting, noun)} {what}",
                    f"`saathii-ops jobs resume {job.job}`: its next run does it",
                )
            )
    return findings


def last_ok_run_now(session: Session, job_name: str) -> datetime | None:
    """The instant the job's newest successful run worked as of; None: it never had one."""
    value = session.execute(
        sa.select(sa.func.max(job_runs.c.run_now)).where(
            job_runs.c.job == job_name, job_runs.c.outcome == "ok"
        )
    ).scalar_one()
    assert value is None or isinstance(value, datetime)
    return value


def badge_problems(
    data: DataHealth,
    jobs: list[JobHealth],
    today: date,
    done_at: datetime | None,
    settings: Settings,
) -> list[Finding]:
    """No badge for today once today's badges-assign firing is past (with the overdue
    grace) and no successful run has followed it: settlement meanwhile pays basic rates.
    A listener added after the day's run (the app's new listener, who earns basic anyway)
    is counted in the figures but is no problem. A paused badges-assign is
    `paused_with_work`'s."""
    job = next((job for job in jobs if job.job == BADGES_JOB), None)
    if job is None or job.paused or not data.listeners_without_badge:
        return []
    if badges.business_date(job.due_at, settings) != today:
        return []  # today's firing is not past yet
    if done_at is not None and done_at >= job.due_at:
        return []
    if job.never_run:
        cause = "it has never run"
    elif job.last_run_failed:
        cause = "its last run failed"
    elif done_at is None:
        cause = "it has never run successfully"
    else:
        cause = f"its last successful run was as of {_moment(done_at)}"
    settled = data.calls_settled_without_badge
    paid_basic = (
        f"; {plural(settled, 'call')} settled today at basic rates for want of a badge row"
        if settled
        else ""
    )
    return [
        Finding(
            f"{plural(data.listeners_without_badge, 'active listener')} without a badge for "
            f"today ({today}): {BADGES_JOB} was due at {_moment(job.due_at)} "
            f"({job.schedule} in {job.timezone}) and {cause}{paid_basic}",
            "`saathii-ops badges assign` assigns today's badges now",
        )
    ]


def billing_cause(job: JobHealth) -> str | None:
    """What status knows keeps coins-deduct from billing, in a few words; None: nothing."""
    if job.paused:
        cause = f"{job.job} is paused since "
        cause += _moment(job.paused_at) if job.paused_at else "?"
        cause += f" by {job.paused_by}"
        return f"{cause}: {job.paused_reason}" if job.paused_reason else cause
    if job.never_run:
        return f"{job.job} has never run"
    if job.last_run_failed:
        return f"{job.job}'s last run failed"
    if job.overdue:
        return f"{job.job} is overdue"
    if job.scheduled is False:
        return f"{job.job} is not in the installed cron block"
    return None
