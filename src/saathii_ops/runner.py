"""The job runner (SPEC §9): the one place that runs a job.

For any job it resolves "now", checks the schema, takes the job's lock, runs
the service in one transaction (read-only for a dry-run, so a stray write fails
loudly), records the run in the audit table and commits. Only the runner
commits; a failed run is rolled back whole and recorded as failed.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops import wiring
from saathii_ops.db import (
    classify_database_error,
    create_private_file,
    database_now,
    disable_jit,
    is_sqlite,
    lost_connection,
    set_statement_timeout,
    transaction,
)
from saathii_ops.errors import DatabaseUnavailable, ExitCode
from saathii_ops.jobs import Job
from saathii_ops.masking import first_line
from saathii_ops.models import SOME_ROWS_FAILED, JobRun
from saathii_ops.monitoring import Pinger, ping_url
from saathii_ops.reports import Report
from saathii_ops.runs import bind_run, bound_run_uuid
from saathii_ops.schema import require_head
from saathii_ops.services.job_control import is_paused
from saathii_ops.settings import Settings

log = logging.getLogger(__name__)

# PostgreSQL advisory locks are keyed by two int4; the first names this project.
ADVISORY_LOCK_NAMESPACE = 0x5AA7


@dataclass
class RunResult:
    job: str
    outcome: str  # ok | failed | skipped | dry-run
    now: datetime
    duration_seconds: float
    report: Report | None = None
    reason: str | None = None  # why a run was skipped: paused | locked
    error: str | None = None
    after_commit: Report | None = None  # what the job did outside the database afterwards

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == "failed":
            return ExitCode.FAILED
        if self.report is not None and self.report.failed_rows:
            return ExitCode.FAILED
        return ExitCode.OK


def run_job(
    engine: Engine,
    settings: Settings,
    job: Job,
    *,
    now: datetime | None,
    dry_run: bool,
    service: wiring.JobService | None = None,
) -> RunResult:
    """Run `job` (or `service`, the job's service with options bound) once."""
    if dry_run:
        return _run(engine, settings, job, now=now, dry_run=True, service=service)
    pinger = Pinger(ping_url(settings, job.name))
    pinger.send("start", {"job": job.name})
    try:
        result = _run(
            engine, settings, job, now=now, dry_run=False, service=service, run_uuid=pinger.run_id
        )
    except Exception as exc:
        pinger.send("failed", {"job": job.name, "outcome": "failed", "error": str(exc)})
        pinger.wait()
        raise
    pinger.send(
        result.outcome,
        {
            "job": job.name,
            "outcome": result.outcome,
            "reason": result.reason,
            "duration_seconds": round(result.duration_seconds, 3),
            "counts": result.report.counts() if result.report else {},
            "error": result.error,
        },
    )
    pinger.wait()
    return result


def _run(
    engine: Engine,
    settings: Settings,
    job: Job,
    *,
    now: datetime | None,
    dry_run: bool,
    service: wiring.JobService | None,
    run_uuid: str | None = None,
) -> RunResult:
    """`run_uuid` (a real run): the run's identifier, in its audit row and its settlements."""
    service = service or wiring.service(job)
    require_head(engine)
    started = time.monotonic()
    with transaction(engine, read_only=dry_run) as session:
        disable_jit(session)
        if run_uuid is not None:
            bind_run(session, run_uuid)
        run_now = now or database_now(session)
        if dry_run:
            report = service(session, run_now, settings, apply=False)
            return RunResult(job.name, "dry-run", run_now, time.monotonic() - started, report)

        started_at = database_now(session)
        set_statement_timeout(session, settings.statement_timeout_seconds)
        # The lock comes first: on SQLite it is a file lock taken before the
        # transaction waits for the database's write lock.
        with job_lock(session, job.lock_name(socket.gethostname())) as acquired:
            if not acquired:
                return _record_skip(session, job, run_now, started_at, started, "locked")
            if is_paused(session, job.name):
                return _record_skip(session, job, run_now, started_at, started, "paused")
            try:
                report = service(session, run_now, settings, apply=True)
                # the good rows commit; the audit row says that some did not
                reason = SOME_ROWS_FAILED if report.failed_rows else None
                _record(
                    session, job, run_now, started_at, "ok", reason=reason, counts=report.counts()
                )
                session.commit()
            except Exception as exc:
                session.rollback()
                lost = lost_connection(exc)
                if lost is not None:
                    raise lost from exc
                log.debug("job %s failed", job.name, exc_info=True)
                error = f"{type(exc).__name__}: {first_line(exc)}"
                # the database's state (read-only, a table gone), not the job: its exit code
                state_error = classify_database_error(exc)
                if state_error is not None:
                    state_error.__cause__ = exc
            else:
                after_commit = wiring.after_commit(job)
                after = after_commit(engine, settings, report, run_now) if after_commit else None
                duration = time.monotonic() - started
                return RunResult(job.name, "ok", run_now, duration, report, after_commit=after)

    if not isinstance(state_error, DatabaseUnavailable):  # a read-only one records nothing
        _record_failure(engine, job, run_now, started_at, error, run_uuid)
    if state_error is not None:
        raise state_error
    return RunResult(job.name, "failed", run_now, time.monotonic() - started, error=error)


@contextmanager
def job_lock(session: Session, lock_name: str) -> Iterator[bool]:
    """Hold the job's lock until the transaction ends; yields whether it was acquired.

    PostgreSQL: a transaction-level advisory lock, released by the server when
    the transaction ends or the process dies. SQLite (one host by nature): an
    flock on a file beside the database, released by the kernel likewise.
    """
    if not is_sqlite(session):
        acquired = session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:namespace, :key)"),
            {"namespace": ADVISORY_LOCK_NAMESPACE, "key": _lock_key(lock_name)},
        ).scalar_one()
        yield bool(acquired)
        return
    database = session.get_bind().engine.url.database
    if not database or database == ":memory:":
        yield True  # a private in-memory database: nobody else can run
        return
    lock_path = Path(f"{database}.{lock_name}.lock")
    create_private_file(lock_path)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_key(lock_name: str) -> int:
    key = zlib.crc32(lock_name.encode())
    return key - 2**32 if key >= 2**31 else key  # int4 is signed


def _record(
    session: Session,
    job: Job,
    run_now: datetime,
    started_at: datetime,
    outcome: str,
    *,
    reason: str | None = None,
    counts: dict[str, int] | None = None,
    error: str | None = None,
) -> None:
    session.add(
        JobRun(
            job=job.name,
            started_at=started_at,
            finished_at=database_now(session),
            outcome=outcome,
            reason=reason,
            counts=counts,
            error=error,
            host=socket.gethostname(),
            run_now=run_now,
            run_uuid=bound_run_uuid(session),
        )
    )
    session.flush()


def _record_skip(
    session: Session,
    job: Job,
    run_now: datetime,
    started_at: datetime,
    started: float,
    reason: str,
) -> RunResult:
    _record(session, job, run_now, started_at, "skipped", reason=reason)
    session.commit()
    return RunResult(job.name, "skipped", run_now, time.monotonic() - started, reason=reason)


def _record_failure(
    engine: Engine,
    job: Job,
    run_now: datetime,
    started_at: datetime,
    error: str,
    run_uuid: str | None,
) -> None:
    """Record a failed run in a transaction of its own: the run's own was rolled back."""
    try:
        with transaction(engine) as session:
            if run_uuid is not None:
                bind_run(session, run_uuid)
            _record(session, job, run_now, started_at, "failed", error=error)
            session.commit()
    except Exception as exc:  # the failure is reported anyway; the record is best effort
        # one line: the statement's parameters are for -v only
        log.warning("could not record the failed run of %s: %s", job.name, first_line(exc))
        log.debug("recording the failed run of %s", job.name, exc_info=True)
