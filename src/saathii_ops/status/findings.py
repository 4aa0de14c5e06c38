"""What `status`'s health rules find (`status.rules`), typed: each kind of problem a
dataclass holding what it is about. Its `problem` is the sentence `status --json` lists in
`problems` (a contract: monitors and people read it); what to do about it is the screen's
(`output.status_screen`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from saathii_ops.output.text import count_name, moment, plural
from saathii_ops.status import unbillable
from saathii_ops.status.report import BILLING_GRACE_MINUTES, DataHealth, JobHealth

BILLING_JOB = "coins-deduct"
BADGES_JOB = "badges-assign"


class Finding(ABC):
    """A problem `status` found: the report is unhealthy while it has any."""

    @property
    @abstractmethod
    def problem(self) -> str:
        """The problem in one sentence, as `status --json` lists it."""


def paused_since(job: JobHealth) -> str:
    """paused since 2026-11-29 06:00:00 UTC by ops: upgrade"""
    text = f"paused since {moment(job.paused_at) if job.paused_at else '?'} by {job.paused_by}"
    return f"{text}: {job.paused_reason}" if job.paused_reason else text


# --- the database ---------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseUnreachable(Finding):
    error: str

    @property
    def problem(self) -> str:
        return self.error


@dataclass(frozen=True)
class SchemaNotReady(Finding):
    reason: str  # db.schema's, with what to run

    @property
    def problem(self) -> str:
        return f"{self.reason} (jobs and data not read until then)"


@dataclass(frozen=True)
class DatabaseReadOnly(Finding):
    reason: str

    @property
    def problem(self) -> str:
        return (
            f"the database is read-only ({self.reason}): every job's run fails (exit 3) "
            "and nothing is billed, ended or recorded"
        )


# --- a job's runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class JobOverdue(Finding):
    job: JobHealth

    @property
    def problem(self) -> str:
        job = self.job
        assert job.last_run_now is not None
        return (
            f"{job.job} is overdue: due at {moment(job.due_at)} ({job.schedule} in "
            f"{job.timezone}), last ran as of {moment(job.last_run_now)}"
        )


@dataclass(frozen=True)
class JobFailed(Finding):
    job: JobHealth

    @property
    def problem(self) -> str:
        job = self.job
        assert job.last_started_at is not None
        return f"{job.job}'s last run failed (at {moment(job.last_started_at)}): {job.last_error}"


@dataclass(frozen=True)
class JobExited1(Finding):
    """An ok run with rows it could not process (for the audit, what it found)."""

    job: JobHealth
    found: tuple[tuple[str, int], ...]  # the run's counts of what made it exit 1, not 0

    @property
    def problem(self) -> str:
        job = self.job
        assert job.last_started_at is not None
        found = ", ".join(f"{count_name(name)} {value}" for name, value in self.found)
        return f"{job.job}'s last run (at {moment(job.last_started_at)}) exited 1: {found}"


# --- the data -------------------------------------------------------------------------


class Stalled(Enum):
    """What status knows keeps coins-deduct from billing."""

    PAUSED = "paused"
    NEVER_RUN = "never run"
    LAST_RUN_FAILED = "last run failed"
    OVERDUE = "overdue"
    NOT_SCHEDULED = "not scheduled"


@dataclass(frozen=True)
class BillingBehind(Finding):
    """Ongoing calls owing coins for minutes that started over the billing grace ago."""

    calls: int
    coins_deduct: JobHealth | None
    stalled: Stalled | None  # None: nothing status knows of

    @property
    def problem(self) -> str:
        n = self.calls
        behind = (
            f"{plural(n, 'ongoing call')} {'owes' if n == 1 else 'owe'} coins for minutes "
            f"that started over {BILLING_GRACE_MINUTES} minutes ago"
        )
        if self.coins_deduct is None or self.stalled is None:
            return f"billing is behind: {behind} (is {BILLING_JOB} running?)"
        return f"billing is behind because {self._cause(self.coins_deduct)}: {behind}"

    def _cause(self, job: JobHealth) -> str:
        match self.stalled:
            case Stalled.PAUSED:
                return f"{job.job} is {paused_since(job)}"
            case Stalled.NEVER_RUN:
                return f"{job.job} has never run"
            case Stalled.LAST_RUN_FAILED:
                return f"{job.job}'s last run failed"
            case Stalled.OVERDUE:
                return f"{job.job} is overdue"
            case _:
                return f"{job.job} is not in the installed cron block"


@dataclass(frozen=True)
class UnbillableCalls(Finding):
    calls: int

    @property
    def problem(self) -> str:
        return (
            f"{plural(self.calls, 'ongoing call')} cannot be billed "
            f"({unbillable.KINDS_IN_SHORT}: `coins deduct --dry-run` names each): "
            "coins deduct skips them"
        )


@dataclass(frozen=True)
class WaitingWork:
    """What a paused job leaves undone: the figure that counts it, and its words."""

    job: str
    count: Callable[[DataHealth], int]
    noun: str
    what: str


# (A paused coins-deduct is billing behind; wallets-audit and logs-prune have no waiting
# work to count.)
WAITING_WORK = (
    WaitingWork(
        "calls-cleanup", lambda data: data.cleanup_due_calls, "ongoing call", "it would end now"
    ),
    WaitingWork(
        "presence-cleanup",
        lambda data: data.presence_due_users,
        "user",
        "it would mark offline or clear of busy now",
    ),
    WaitingWork(
        BADGES_JOB,
        lambda data: data.listeners_without_badge,
        "active listener",
        "without a badge for today",
    ),
)


@dataclass(frozen=True)
class PausedWithWork(Finding):
    job: JobHealth
    work: WaitingWork
    waiting: int

    @property
    def problem(self) -> str:
        return (
            f"{self.job.job} is {paused_since(self.job)}, with work waiting: "
            f"{plural(self.waiting, self.work.noun)} {self.work.what}"
        )


class BadgesMissed(Enum):
    """Why today's badges-assign firing has no successful run since."""

    NEVER_RUN = "it has never run"
    LAST_RUN_FAILED = "its last run failed"
    NEVER_SUCCEEDED = "it has never run successfully"
    SUCCEEDED_BEFORE = "its last successful run was before it was due"


@dataclass(frozen=True)
class NoBadgeForToday(Finding):
    """Listeners without today's badge once today's badges-assign firing is past."""

    listeners: int
    today: date
    badges_assign: JobHealth
    missed: BadgesMissed
    last_success: datetime | None  # the instant its newest successful run worked as of
    settled_at_basic_rates: int

    @property
    def problem(self) -> str:
        job = self.badges_assign
        if self.missed is BadgesMissed.SUCCEEDED_BEFORE:
            assert self.last_success is not None
            cause = f"its last successful run was as of {moment(self.last_success)}"
        else:
            cause = self.missed.value
        settled = self.settled_at_basic_rates
        paid_basic = (
            f"; {plural(settled, 'call')} settled today at basic rates for want of a badge row"
            if settled
            else ""
        )
        return (
            f"{plural(self.listeners, 'active listener')} without a badge for today "
            f"({self.today}): {job.job} was due at {moment(job.due_at)} "
            f"({job.schedule} in {job.timezone}) and {cause}{paid_basic}"
        )
