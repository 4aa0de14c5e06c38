"""The job registry: the one list that the runner, the CLI, `demo`, `status` and `cron
install` read. A job is added here, in one entry: its name, command, schedule, the service
that runs it, what follows its commit, and its help.

Services are named "module:function" and resolved only when the job runs, so reading the
registry (the CLI, shell completion, `cron install`) imports no service."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from saathii_ops.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from saathii_ops.reports import Report
    from saathii_ops.runtime.context import RunContext
    from saathii_ops.settings import Settings


class JobService(Protocol):
    """Plans the job's changes at `run.now`; applies them only when `run.apply` is true;
    never commits."""

    def __call__(self, run: RunContext[Any]) -> Report: ...


class AfterCommitStep(Protocol):
    """Work outside the database once the run has committed (it must never raise)."""

    def __call__(
        self, engine: Engine, settings: Settings, report: Report, run_now: datetime
    ) -> Report | None: ...


@dataclass(frozen=True)
class AfterCommit:
    step: str  # "module:function" of an AfterCommitStep
    # Whether the step has anything to do with these settings: when not, it is not even
    # resolved (its module may import an optional extra).
    wanted: Callable[[Settings], bool]


# A billing job changes coins_spent, which the app's Redis call cache must follow. The
# cache's module imports redis, an optional extra: only with a Redis URL configured
# (settings refuse one at load when the package is missing).
SYNC_CALL_CACHE = AfterCommit(
    "saathii_ops.jobs.call_cache:after_billing", wanted=lambda s: s.redis_url is not None
)


@dataclass(frozen=True, kw_only=True)
class ScheduledCommand:
    """A line of the schedule (`cron install`): a command, and when it runs."""

    name: str
    command: str  # after `saathii-ops`: "group command" for a job
    schedule: str
    business_time: bool  # the schedule is read in the business timezone, not the server's


@dataclass(frozen=True, kw_only=True)
class Job(ScheduledCommand):
    service: str  # "module:function" of its JobService
    help: str  # the command's help
    after_commit: AfterCommit | None = None
    # The job bills calls (coins_spent changes).
    bills: bool = False
    # The job's work is each host's own (its log files): every host runs it, so its
    # lock is per host, not one for all hosts.
    per_host: bool = False

    def lock_name(self, host: str) -> str:
        return f"{self.name}@{host}" if self.per_host else self.name

    def resolve_service(self) -> JobService:
        return cast("JobService", _resolve(self.service))

    def after_commit_step(self, settings: Settings) -> AfterCommitStep | None:
        if self.after_commit is None or not self.after_commit.wanted(settings):
            return None
        return cast("AfterCommitStep", _resolve(self.after_commit.step))


def _resolve(reference: str) -> object:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


JOBS: tuple[Job, ...] = (
    Job(
        name="coins-deduct",
        command="coins deduct",
        schedule="* * * * *",
        business_time=False,
        service="saathii_ops.billing.charge:deduct",
        help="Bill every ongoing call per started minute; end the calls the caller cannot pay "
        "for.\n\n"
        "Skipped calls: those it could not bill (half-ended: the app set their end_time). "
        "Calls planned again: their caller's rows changed between planning and locking, so the "
        "run planned them anew. Held calls: another session holds a row they need; the next "
        "run bills them.",
        after_commit=SYNC_CALL_CACHE,
        bills=True,
    ),
    Job(
        name="calls-cleanup",
        command="calls cleanup",
        schedule="*/10 * * * *",
        business_time=False,
        service="saathii_ops.jobs.call_cleanup:cleanup",
        help="End the calls that should have ended (a silent party, too long, wait time up); "
        "bill what they owe and settle them.\n\n"
        "Skipped calls: those it could not settle (half-ended: the app set their end_time). "
        "Calls planned again: their rows changed between planning and locking, so the run "
        "planned them anew. Held calls: another session holds a row they need; the next run "
        "ends them.",
        after_commit=SYNC_CALL_CACHE,
        bills=True,
    ),
    Job(
        name="presence-cleanup",
        command="presence cleanup",
        schedule="*/5 * * * *",
        business_time=False,
        service="saathii_ops.jobs.presence:cleanup",
        help="Mark users offline who have not been seen for the inactive limit; clear stale "
        "busy flags.\n\n"
        "Cleared wait time: callers whose wait time ran out, on no ongoing call; cleared no "
        "call: users marked busy, on no ongoing call. Still online: the users online after the "
        "run. Held by another session: rows the app was writing; the next run changes them.",
    ),
    Job(
        name="badges-assign",
        command="badges assign",
        schedule="1 0 * * *",
        business_time=True,
        service="saathii_ops.jobs.badges:assign",
        help="Give every active listener the badge (and rates) their call minutes of the day "
        "before earn; replaces the rows already there.\n\n"
        "Reassigned: listeners whose badge for the date was there already, written again "
        "(with `replaces`, the badge it had). Held listener ids: rows another session held; "
        "the next run assigns them.",
    ),
    Job(
        name="logs-prune",
        command="logs prune",
        # 01:00 of the server's clock: housekeeping of the server's own files, with no
        # business meaning, so no conversion (badges-assign is the business-time job)
        schedule="0 1 * * *",
        business_time=False,
        service="saathii_ops.jobs.log_prune:prune",
        help="Rotate the jobs' logs and delete those older than N days; prune the job-runs "
        "audit table (failed runs after failed_run_retention_days, 30).",
        per_host=True,
    ),
    Job(
        name="wallets-audit",
        command="wallets audit",
        schedule="0 * * * *",
        business_time=False,
        service="saathii_ops.jobs.wallet_audit:audit_job",
        help="Wallets whose balance differs from their ledger rows; calls the app changed "
        "after we settled them; half-ended calls (ongoing with an end_time) and those the app "
        "ended again; ongoing calls charged more or less than their elapsed minutes require. "
        "Exit 1 when anything is found.\n\n"
        "Of an ongoing call: coins due now, what its elapsed minutes cost at this instant; "
        "coins due by now, what billing must have charged by now (its minutes as of the "
        "billing grace ago). Charged above the first: overcharged; below the second: "
        "undercharged.",
    ),
)


def get_job(name: str) -> Job:
    for job in JOBS:
        if job.name == name:
            return job
    known = ", ".join(job.name for job in JOBS)
    raise UsageError(f"unknown job {name!r}; known jobs: {known}")
