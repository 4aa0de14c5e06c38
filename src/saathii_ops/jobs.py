"""The job registry: the one list that the runner, `demo`, `status` and `cron install` read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.errors import UsageError
from saathii_ops.reports import Report
from saathii_ops.services import (
    badges,
    billing,
    call_cache,
    call_cleanup,
    log_prune,
    presence,
    wallet_audit,
)
from saathii_ops.settings import Settings


class JobService(Protocol):
    """Plans the job's changes at `now`; applies them only when `apply` is true."""

    def __call__(
        self, session: Session, now: datetime, settings: Settings, *, apply: bool
    ) -> Report: ...


class AfterCommit(Protocol):
    """Work outside the database once the run has committed (it must never raise)."""

    def __call__(
        self, engine: Engine, settings: Settings, report: Report, run_now: datetime
    ) -> Report | None: ...


@dataclass(frozen=True)
class Job:
    name: str
    command: str
    schedule: str
    business_time: bool  # the schedule is read in the business timezone, not the server's
    description: str
    service: JobService
    after_commit: AfterCommit | None = None
    # The job's work is each host's own (its log files): every host runs it, so its
    # lock is per host, not one for all hosts.
    per_host: bool = False

    def lock_name(self, host: str) -> str:
        return f"{self.name}@{host}" if self.per_host else self.name


JOBS: tuple[Job, ...] = (
    Job(
        name="coins-deduct",
        command="coins deduct",
        schedule="* * * * *",
        business_time=False,
        description="bills every ongoing call per started minute; ends calls the caller cannot pay",
        service=billing.deduct,
        after_commit=call_cache.after_billing,
    ),
    Job(
        name="calls-cleanup",
        command="calls cleanup",
        schedule="*/10 * * * *",
        business_time=False,
        description="ends calls that should have ended (silent party, too long, wait time up)",
        service=call_cleanup.cleanup,
        after_commit=call_cache.after_billing,
    ),
    Job(
        name="presence-cleanup",
        command="presence cleanup",
        schedule="*/5 * * * *",
        business_time=False,
        description="marks inactive users offline and clears stale busy flags",
        service=presence.cleanup,
    ),
    Job(
        name="badges-assign",
        command="badges assign",
        schedule="1 0 * * *",
        business_time=True,
        description="gives every listener today's badge from yesterday's call minutes",
        service=badges.assign,
    ),
    Job(
        name="logs-prune",
        command="logs prune",
        # 01:00 of the server's clock: housekeeping of the server's own files, with no
        # business meaning, so no conversion (badges-assign is the business-time job)
        schedule="0 1 * * *",
        business_time=False,
        description="rotates and deletes old job logs; prunes the job-runs audit table",
        service=log_prune.prune,
        per_host=True,
    ),
    Job(
        name="wallets-audit",
        command="wallets audit",
        schedule="0 * * * *",
        business_time=False,
        description="proves the ledger, the calls and our settlements agree",
        service=wallet_audit.audit_job,
    ),
)


def get_job(name: str) -> Job:
    for job in JOBS:
        if job.name == name:
            return job
    known = ", ".join(job.name for job in JOBS)
    raise UsageError(f"unknown job {name!r}; known jobs: {known}")
