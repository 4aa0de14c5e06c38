"""What `status` reports (SPEC §11): the database, the schema, each job, the data's figures,
and the findings its health rules made of them. `status --json` is these dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from saathii_ops.billing.charge import BILLING_GRACE
from saathii_ops.db.tables import SOME_ROWS_FAILED
from saathii_ops.errors import ExitCode
from saathii_ops.jobs.job_control import JobState
from saathii_ops.reports import INTERNAL, Report
from saathii_ops.status import unbillable

if TYPE_CHECKING:
    from saathii_ops.status.findings import Finding

BILLING_GRACE_MINUTES = int(BILLING_GRACE.total_seconds()) // 60


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
            f"{BILLING_GRACE_MINUTES} minutes ago (billing is behind)"
        )
    )
    unbillable_calls: int = field(
        metadata=_figure(f"ongoing calls billing cannot bill ({unbillable.KINDS})")
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
class StatusReport(Report):
    now: datetime
    healthy: bool
    problems: list[str]  # each finding's `problem`, in order
    database: DatabaseHealth
    schema: SchemaHealth | None
    crontab: str | None  # where the installed cron block was looked for; None: nowhere
    badge_date: date | None  # "today" in the business timezone
    jobs: list[JobHealth]
    data: DataHealth | None
    # what the health rules found, typed (the screen says what to do about each)
    findings: list[Finding] = field(default_factory=list, metadata=INTERNAL)
    # the zone `badge_date` is "today" in, for people
    business_timezone: str | None = field(default=None, metadata=INTERNAL)

    @property
    def exit_code(self) -> ExitCode:
        """SPEC §9: the database unreachable, something unhealthy, else OK."""
        if not self.database.reachable:
            return ExitCode.UNAVAILABLE
        return ExitCode.OK if self.healthy else ExitCode.FAILED
