"""The registry's wiring: which service function runs each registered job, and what follows
its commit. Resolved when a job runs, importing only that job's service: the registry
(`jobs`) stays data, and services never import this module or the runner."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, cast

from saathii_ops.runtime.registry import Job

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from saathii_ops.reports import Report
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


# job name -> "module:function" of its service
SERVICES = {
    "coins-deduct": "saathii_ops.billing.charge:deduct",
    "calls-cleanup": "saathii_ops.jobs.call_cleanup:cleanup",
    "presence-cleanup": "saathii_ops.jobs.presence:cleanup",
    "badges-assign": "saathii_ops.jobs.badges:assign",
    "logs-prune": "saathii_ops.jobs.log_prune:prune",
    "wallets-audit": "saathii_ops.jobs.wallet_audit:audit_job",
}
# A billing job changes coins_spent, which the app's Redis call cache must follow. The
# cache's module imports redis, an optional extra: it is resolved only when a Redis URL is
# configured (settings refuse one at load when the package is missing).
AFTER_BILLING = "saathii_ops.jobs.call_cache:after_billing"


def _resolve(reference: str) -> object:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def service(job: Job) -> JobService:
    return cast("JobService", _resolve(SERVICES[job.name]))


def after_commit(job: Job, settings: Settings) -> AfterCommit | None:
    if not job.bills or settings.redis_url is None:
        return None
    return cast("AfterCommit", _resolve(AFTER_BILLING))
