"""The job runner (SPEC §9): the one place that runs a job.

For any job it resolves "now", checks the schema, takes the job's lock, runs
the service in one transaction (read-only for a dry-run, so a stray write fails
loudly), records the run in the audit table and commits. Only the runner
commits; a failed run is rolled back whole and recorded as failed.

Every statement of a run is bounded: the run's own by statement_timeout, its
bookkeeping by BOOKKEEPING_SECONDS, and the whole run by run_deadline_seconds
(run_guard.py, which also turns SIGINT and SIGTERM into a rolled-back run
recorded as failed). A run that hits a deadlock or a serialization failure is
tried once more before it is reported failed.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.db.engine import (
    bound_statements,
    database_clock,
    database_now,
    disable_jit,
    set_statement_timeout,
    transaction,
)
from saathii_ops.db.errors import classify_database_error, lost_connection
from saathii_ops.db.schema import require_head
from saathii_ops.db.tables import SOME_ROWS_FAILED, RunOutcome, ops_job_runs
from saathii_ops.errors import DatabaseUnavailable, ExitCode, Interrupted, OpsError
from saathii_ops.jobs.job_control import Pause, current_pause
from saathii_ops.output.masking import first_line
from saathii_ops.reports import Report
from saathii_ops.runtime import pending_runs
from saathii_ops.runtime.context import RunContext, new_run_id
from saathii_ops.runtime.guard import RunGuard
from saathii_ops.runtime.locks import job_lock, wait_for_lock
from saathii_ops.runtime.pings import FAIL, START, Pinger, ping_url, result_endpoint
from saathii_ops.runtime.registry import Job, JobService
from saathii_ops.settings import Settings

log = logging.getLogger(__name__)

# A dry-run's reason when the job is paused.
PAUSED_DRY_RUN = "paused: a real run would be skipped"


@dataclass
class RunResult:
    job: str
    outcome: RunOutcome
    now: datetime
    duration_seconds: float
    report: Report | None = None
    reason: str | None = None  # why a run was skipped: paused | locked
    error: str | None = None
    after_commit: Report | None = None  # what the job did outside the database afterwards
    warning: str | None = None  # work after the commit that failed: reported, never raised
    paused_by: str | None = None  # a paused job's run: who paused it, and why
    paused_reason: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == RunOutcome.FAILED:
            return ExitCode.FAILED
        if self.report is not None and self.report.failed_rows:
            return ExitCode.FAILED
        return ExitCode.OK


# Each statement of a run's bookkeeping (its failure record, its reads after the
# commit) waits at most this long; the run's deadline keeps DEADLINE_RESERVE_SECONDS
# of its time for that bookkeeping, so the whole run ends within its deadline.
BOOKKEEPING_SECONDS = 2.0
DEADLINE_RESERVE_SECONDS = 4.0
# SQLSTATEs of a run retried once before it is reported failed: deadlock detected,
# serialization failure (both roll the run back whole; the next attempt plans again)
RETRIED_SQLSTATES = ("40P01", "40001")


def run_job(
    engine: Engine,
    settings: Settings,
    job: Job,
    *,
    now: datetime | None,
    dry_run: bool,
    options: object = None,
) -> RunResult:
    """Run `job` once; its service gets the command's `options` in its RunContext."""
    deadline = settings.run_deadline_seconds
    guard = RunGuard(
        engine,
        deadline - DEADLINE_RESERVE_SECONDS,
        f"stopped at its deadline of {deadline} s (run_deadline_seconds): rolled back",
    )
    run_id = new_run_id()
    if dry_run:
        with guard:
            return _dry_run(_Run(engine, settings, job, now, options, run_id, guard))
    pinger = Pinger(ping_url(settings, job.name), run_id)
    run = _Run(engine, settings, job, now, options, run_id, guard, pinger)
    with guard:
        try:
            result = _run(run)
        except Exception as exc:
            pinger.send(FAIL, {"job": job.name, "outcome": RunOutcome.FAILED, "error": str(exc)})
            pinger.wait()
            raise
        pinger.send(
            result_endpoint(result.outcome, result.exit_code),
            {
                "job": job.name,
                "outcome": result.outcome,
                "exit_code": result.exit_code,
                "reason": result.reason,
                "duration_seconds": round(result.duration_seconds, 3),
                "counts": result.report.counts() if result.report else {},
                "error": result.error,
                "warning": result.warning,
            },
        )
        pinger.wait()
    stop = guard.stop
    if stop is not None and stop.exit_code is not None:
        raise Interrupted(
            f"{job.name} {stop.reason} after its run ended ({result.outcome}, recorded)",
            stop.exit_code,
        )
    return result


@dataclass(frozen=True)
class _Run:
    """One run of a job, as the runner sees it: what its RunContext is made of, and what
    stops it and reports it."""

    engine: Engine
    settings: Settings
    job: Job
    now: datetime | None  # the --now given; else the database's, read in the transaction
    options: object
    run_id: str
    guard: RunGuard
    pinger: Pinger | None = None  # a real run's

    def context(self, session: Session, run_now: datetime, *, apply: bool) -> RunContext[Any]:
        return RunContext(session, run_now, self.run_id, apply, self.settings, self.options)


def _dry_run(run: _Run) -> RunResult:
    job, settings = run.job, run.settings
    service = job.resolve_service()
    started = time.monotonic()
    try:
        require_head(run.engine, timeout_seconds=settings.statement_timeout_seconds)
        with transaction(run.engine, read_only=True) as session:
            disable_jit(session)
            set_statement_timeout(session, settings.statement_timeout_seconds)
            run_now = run.now or database_now(session)
            # what a real run would do first: a paused job's run is skipped
            pause = current_pause(session, job.name)
            report = service(run.context(session, run_now, apply=False))
    except Exception as exc:
        stop = run.guard.stop
        if stop is None:
            raise
        if stop.exit_code is not None:
            raise Interrupted(f"{job.name} dry-run {stop.reason}", stop.exit_code) from exc
        raise OpsError(f"{job.name} dry-run {stop.reason}") from exc
    duration = time.monotonic() - started
    result = RunResult(job.name, RunOutcome.DRY_RUN, run_now, duration, report)
    if pause is not None:
        result.reason = PAUSED_DRY_RUN
        result.paused_by, result.paused_reason = pause.by, pause.reason
    return result


@dataclass
class _Failure:
    """An attempt that did not commit: what failed, and what the attempt had learnt."""

    exc: Exception
    run_now: datetime | None
    started_at: datetime | None


def _run(run: _Run) -> RunResult:
    """A real run: its run id is in its audit row, its pings and its settlements."""
    service = run.job.resolve_service()
    started = time.monotonic()
    try:
        require_head(run.engine, timeout_seconds=run.settings.statement_timeout_seconds)
    except OpsError as exc:
        if run.guard.stop is None:
            raise
        return _failed(run, _Failure(exc, None, None), started)
    # failed runs this host could not record when the database went away
    pending_runs.record_kept(run.engine, BOOKKEEPING_SECONDS)
    attempt: RunResult | _Failure
    for first in (True, False):
        attempt = _attempt(run, service, first=first)
        if not isinstance(attempt, _Failure):
            return attempt
        code = getattr(getattr(attempt.exc, "orig", None), "pgcode", None)
        if not (first and run.guard.stop is None and code in RETRIED_SQLSTATES):
            break
        log.warning("%s: %s; trying once more", run.job.name, first_line(attempt.exc))
    assert isinstance(attempt, _Failure)
    return _failed(run, attempt, started)


def _attempt(run: _Run, service: JobService, *, first: bool) -> RunResult | _Failure:
    job, run_now, started_at = run.job, None, None
    assert run.pinger is not None
    try:
        with transaction(run.engine) as session:
            set_statement_timeout(session, run.settings.statement_timeout_seconds)
            disable_jit(session)
            started_at = database_clock(session)
            run_now = run.now or database_now(session)
            # The lock comes first: on SQLite it is a file lock taken before the
            # transaction waits for the database's write lock.
            with job_lock(session, job.lock_name(socket.gethostname())) as acquired:
                if not acquired:
                    return _record_skip(session, run, run_now, started_at, "locked")
                pause = current_pause(session, job.name)
                if pause is not None:
                    return _record_skip(session, run, run_now, started_at, "paused", pause)
                if first:  # only a run that will run says it started (SPEC §9)
                    run.pinger.send(START, {"job": job.name})
                report = service(run.context(session, run_now, apply=True))
                # the good rows commit; the audit row says that some did not
                duration = _record(
                    session,
                    run,
                    run_now,
                    started_at,
                    RunOutcome.OK,
                    reason=SOME_ROWS_FAILED if report.failed_rows else None,
                    counts=report.counts(),
                )
                session.commit()
    except DatabaseUnavailable as exc:
        if started_at is None and run.guard.stop is None:
            raise  # never connected: nothing to roll back, nowhere to record it
        return _Failure(exc, run_now, started_at)
    except Exception as exc:
        log.debug("job %s failed", job.name, exc_info=True)
        return _Failure(exc, run_now, started_at)
    run.guard.disarm()
    after, warning = _after_commit(run, report, run_now)
    return RunResult(
        job.name, RunOutcome.OK, run_now, duration, report, after_commit=after, warning=warning
    )


def _failed(run: _Run, failure: _Failure, started: float) -> RunResult:
    """A run rolled back: record it failed (when the database can be reached) and report
    it: a RunResult for a job that failed, the operator's error for anything else."""
    run.guard.disarm()
    job, exc, stop = run.job, failure.exc, run.guard.stop
    lost = lost_connection(exc) is not None
    state_error = None if stop is not None else classify_database_error(exc)
    if stop is not None:
        error = stop.reason
    elif lost:
        error = f"lost the database connection: {first_line(exc)}"
    else:
        error = f"{type(exc).__name__}: {first_line(exc)}"

    unwritable = isinstance(state_error, DatabaseUnavailable)  # read-only: takes no record
    if unwritable:
        error = str(state_error)
    recorded: float | None = None
    kept = False
    if not unwritable:
        recorded = _record_failure(run, failure, error, quiet=lost)
    if recorded is None and (lost or unwritable):
        # the server went away with the run, or takes no writes now: recorded later
        kept = _keep_failure(run, failure, error)
    if recorded is not None:
        record = "recorded as failed"
    elif kept:
        record = "not recorded yet: kept on this host, the next run records it"
    else:
        record = "could not be recorded"
    if stop is not None and stop.exit_code is not None:
        raise Interrupted(f"{job.name} {stop.reason}, nothing applied; {record}", stop.exit_code)
    if stop is None and lost:
        raise DatabaseUnavailable(
            f"{job.name} lost the database connection mid-run ({first_line(exc)}): "
            f"the server rolled it back, nothing applied; {record}"
        ) from exc
    if state_error is not None:
        raise state_error from exc
    # stopped before its first statement: the host's clock
    run_now = failure.run_now or failure.started_at or datetime.now(UTC)
    duration = time.monotonic() - started if recorded is None else recorded
    return RunResult(job.name, RunOutcome.FAILED, run_now, duration, error=error)


def _after_commit(run: _Run, report: Report, run_now: datetime) -> tuple[Report | None, str | None]:
    """The job's work outside the database once the run committed: whatever goes wrong
    there is a warning, never the run's failure (its changes stand, and are recorded ok).
    Resolving the step (importing its module) is part of it."""
    try:
        step = run.job.after_commit_step(run.settings)
        if step is None:
            return None, None
        return step(run.engine, run.settings, report, run_now), None
    except Exception as exc:
        warning = f"after the commit: {type(exc).__name__}: {first_line(exc)}"
        log.warning("%s %s (the run's changes stand)", run.job.name, warning)
        log.debug("%s after the commit", run.job.name, exc_info=True)
        return None, warning


T = TypeVar("T")


def run_exclusive(
    engine: Engine,
    settings: Settings,
    work: Callable[[Session, datetime], T],
    *,
    now: datetime | None,
    apply: bool,
    jobs: Sequence[Job],
) -> T:
    """Work that is not a registered job (`wallets reconcile`), in one transaction: a
    preview read-only; with `apply`, under the locks of `jobs` (so none of them runs
    meanwhile, on any host), committed when `work` returns. Every statement is bounded by
    statement_timeout; an error rolls it back whole."""
    require_head(engine, timeout_seconds=settings.statement_timeout_seconds)
    with transaction(engine, read_only=not apply) as session, ExitStack() as locks:
        if apply:  # on SQLite the locks are files, taken before the database's write lock
            for job in jobs:
                wait_for_lock(locks, session, job)
        set_statement_timeout(session, settings.statement_timeout_seconds)
        disable_jit(session)
        result = work(session, now or database_now(session))
        if apply:
            session.commit()
    return result


def operator_change(
    engine: Engine,
    settings: Settings,
    work: Callable[[Session, datetime], T],
    *,
    now: datetime | None,
) -> T:
    """A change an operator asks for that is no job run (`jobs pause`, the demo's sample
    data): the one place besides a job run that commits, when `work` returns."""
    return run_exclusive(engine, settings, work, now=now, apply=True, jobs=())


def _record(
    session: Session,
    run: _Run,
    run_now: datetime,
    started_at: datetime,
    outcome: RunOutcome,
    *,
    reason: str | None = None,
    counts: dict[str, int] | None = None,
    error: str | None = None,
) -> float:
    """Add the run's audit row; its duration (finished - started), the one duration of the
    run that its log line, `jobs history`, `status` and the JSON all show."""
    finished_at = database_clock(session)
    session.execute(
        sa.insert(ops_job_runs).values(
            job=run.job.name,
            started_at=started_at,
            finished_at=finished_at,
            outcome=outcome,
            reason=reason,
            counts=counts,
            error=error,
            host=socket.gethostname(),
            run_now=run_now,
            run_uuid=run.run_id,
        )
    )
    return (finished_at - started_at).total_seconds()


def _record_skip(
    session: Session,
    run: _Run,
    run_now: datetime,
    started_at: datetime,
    reason: str,
    pause: Pause | None = None,
) -> RunResult:
    duration = _record(session, run, run_now, started_at, RunOutcome.SKIPPED, reason=reason)
    session.commit()
    result = RunResult(run.job.name, RunOutcome.SKIPPED, run_now, duration, reason=reason)
    if pause is not None:
        result.paused_by, result.paused_reason = pause.by, pause.reason
    return result


def _keep_failure(run: _Run, failure: _Failure, error: str) -> bool:
    """The failure record of a run whose database went away (`pending_runs`), its times by
    this host's clock where the database's are not known."""
    finished_at = datetime.now(UTC)
    started_at = failure.started_at or finished_at
    record = {
        "job": run.job.name,
        "started_at": started_at,
        "finished_at": max(finished_at, started_at),
        "outcome": RunOutcome.FAILED,
        "error": error,
        "host": socket.gethostname(),
        "run_now": failure.run_now or started_at,
        "run_uuid": run.run_id,
    }
    return pending_runs.keep(run.engine.url, record)


def _record_failure(run: _Run, failure: _Failure, error: str, *, quiet: bool) -> float | None:
    """Record a failed run in a transaction of its own (the run's own was rolled back),
    every statement bounded: a table locked by someone else must not hold the run.
    Best effort: returns its recorded duration, None when it could not be recorded.
    `quiet`: the caller keeps the record for later if not (a lost database) and says so
    in its one line."""
    try:
        with transaction(run.engine) as session:
            bound_statements(session, BOOKKEEPING_SECONDS)
            started_at = failure.started_at or database_clock(session)
            run_now = failure.run_now or started_at
            duration = _record(session, run, run_now, started_at, RunOutcome.FAILED, error=error)
            session.commit()
        return duration
    except Exception as exc:  # the failure is reported anyway
        # one line: the statement's parameters are for -v only
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "could not record the failed run of %s: %s",
            run.job.name,
            first_line(exc),
        )
        log.debug("recording the failed run of %s", run.job.name, exc_info=True)
        return None
