"""Pausing and resuming jobs (SPEC §9), and the registered jobs with their state.

A pause is a row of `ops_job_controls`, in the database every host and every
Kubernetes pod reads, so it holds everywhere at once; the runner records a run
of a paused job as skipped. Pausing is not a job run: the command that calls
`set_paused` commits its one upsert itself (there is no plan to preview and no
run to record; docs/decisions.md#runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.engine import is_sqlite
from saathii_ops.db.tables import SOME_ROWS_FAILED, RunOutcome
from saathii_ops.db.tables import ops_job_controls as controls
from saathii_ops.db.tables import ops_job_runs as runs
from saathii_ops.reports import Report
from saathii_ops.runtime.registry import JOBS, get_job
from saathii_ops.settings import Settings


@dataclass(frozen=True)
class Pause:
    """Who paused a job, when and why (a skipped run's log line says so)."""

    by: str | None
    at: datetime | None
    reason: str | None


def current_pause(session: Session, job_name: str) -> Pause | None:
    """The job's pause; None when it is not paused."""
    row = session.execute(
        sa.select(controls.c.changed_by, controls.c.changed_at, controls.c.reason).where(
            controls.c.job == job_name, controls.c.paused
        )
    ).one_or_none()
    return None if row is None else Pause(row.changed_by, row.changed_at, row.reason)


@dataclass
class PauseReport(Report):
    job: str
    paused: bool
    was_paused: bool
    changed_at: datetime | None
    changed_by: str | None
    reason: str | None  # why it is paused; None once resumed
    # a resume: the pause it ended (when, by whom, why); None when it was not paused
    was_paused_at: datetime | None = None
    was_paused_by: str | None = None
    was_paused_reason: str | None = None


def set_paused(
    session: Session,
    job_name: str,
    *,
    paused: bool,
    now: datetime,
    changed_by: str,
    reason: str | None = None,
) -> PauseReport:
    """Pause (with why) or resume a job for every host. Setting the state it already has
    changes nothing, so the row keeps who paused it, when and why; a resume clears the
    reason."""
    job = get_job(job_name)
    before = session.execute(
        sa.select(
            controls.c.paused, controls.c.changed_at, controls.c.changed_by, controls.c.reason
        ).where(controls.c.job == job.name)
    ).one_or_none()
    was_paused = bool(before and before.paused)
    reason = reason if paused else None
    # here, not at import: a job run reads the switch only (start-up, docs/performance.md)
    from sqlalchemy.dialects import postgresql, sqlite

    insert = (sqlite.insert if is_sqlite(session) else postgresql.insert)(controls)
    values = {"paused": paused, "changed_at": now, "changed_by": changed_by, "reason": reason}
    statement = insert.values(job=job.name, **values).on_conflict_do_update(
        index_elements=[controls.c.job], set_=values, where=controls.c.paused != paused
    )
    session.execute(statement)
    row = session.execute(
        sa.select(controls.c.changed_at, controls.c.changed_by, controls.c.reason).where(
            controls.c.job == job.name
        )
    ).one()
    report = PauseReport(job.name, paused, was_paused, row.changed_at, row.changed_by, row.reason)
    if was_paused and not paused:
        assert before is not None
        report.was_paused_at = before.changed_at
        report.was_paused_by = before.changed_by
        report.was_paused_reason = before.reason
    return report


def recorded_exit_code(outcome: str, reason: str | None, error: str | None) -> int:
    """The exit code of a recorded run, from its audit row (SPEC §9's codes): an ok run with
    rows it could not process (an audit that found something) 1; a run stopped by a signal
    128 + its number; one that lost the database, or found it read-only, 3; any other
    failure 1."""
    if outcome != RunOutcome.FAILED:
        return 1 if reason == SOME_ROWS_FAILED else 0
    text = error or ""
    if text.startswith("interrupted by SIGINT"):
        return 130
    if text.startswith("interrupted by SIGTERM"):
        return 143
    if text.startswith(("lost the database connection", "the database is read-only")):
        return 3
    return 1


@dataclass
class JobState:
    job: str
    command: str
    schedule: str
    timezone: str  # where the schedule is read: the business timezone, or "server"
    paused: bool
    paused_by: str | None
    paused_at: datetime | None
    paused_reason: str | None
    last_outcome: str | None
    last_reason: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_error: str | None
    last_run_now: datetime | None  # the "now" the last run worked as of
    last_duration_seconds: float | None
    last_counts: dict[str, int] | None
    last_failed_at: datetime | None  # the newest failed run, whatever ran after it
    last_failure_error: str | None


def list_jobs(session: Session, settings: Settings) -> list[JobState]:
    """Every registered job, in registry order, with its pause switch, its last run and
    its last failure."""
    # croniter and python-crontab: here, not at import, which every job run pays
    from saathii_ops.scheduling.expressions import job_schedule

    names = [job.name for job in JOBS]
    paused = {
        row.job: row
        for row in session.execute(
            sa.select(controls).where(controls.c.job.in_(names), controls.c.paused.is_(True))
        )
    }
    last = _newest_runs(session, names)
    last_failure = _newest_runs(session, names, runs.c.outcome == RunOutcome.FAILED)

    states = []
    for job in JOBS:
        pause, run = paused.get(job.name), last.get(job.name)
        failure = last_failure.get(job.name)
        states.append(
            JobState(
                job=job.name,
                command=job.command,
                schedule=job_schedule(job, settings),
                timezone=settings.timezone if job.business_time else "server",
                paused=pause is not None,
                paused_by=pause.changed_by if pause else None,
                paused_at=pause.changed_at if pause else None,
                paused_reason=pause.reason if pause else None,
                last_outcome=run.outcome if run else None,
                last_reason=run.reason if run else None,
                last_started_at=run.started_at if run else None,
                last_finished_at=run.finished_at if run else None,
                last_error=run.error if run else None,
                last_run_now=run.run_now if run else None,
                last_duration_seconds=(run.finished_at - run.started_at).total_seconds()
                if run
                else None,
                last_counts=run.counts if run else None,
                last_failed_at=failure.started_at if failure else None,
                last_failure_error=failure.error if failure else None,
            )
        )
    return states


def _newest_runs(
    session: Session, names: list[str], *where: sa.ColumnElement[bool]
) -> dict[str, sa.Row[Any]]:
    """The newest run of each job (of those matching `where`)."""
    newest_first = sa.func.row_number().over(
        partition_by=runs.c.job, order_by=(runs.c.started_at.desc(), runs.c.run_id.desc())
    )
    ranked = (
        sa.select(runs, newest_first.label("rank")).where(runs.c.job.in_(names), *where).subquery()
    )
    return {row.job: row for row in session.execute(sa.select(ranked).where(ranked.c.rank == 1))}


@dataclass
class RunRecord:
    """One row of ops_job_runs, as `jobs history` shows it."""

    run_id: int
    job: str
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    outcome: str
    reason: str | None
    counts: dict[str, int] | None
    error: str | None
    host: str
    run_now: datetime  # the instant the run worked as of (`--now`, else its start)
    run_uuid: str | None


@dataclass
class HistoryReport(Report):
    job: str | None  # None: every job
    failed_only: bool
    limit: int
    runs: list[RunRecord]


def history_query(job_name: str | None, *, limit: int, failed_only: bool) -> sa.Select[Any]:
    """The newest `limit` runs of a job (or of every registered job), newest first.

    Each job's runs are read newest first along ix_ops_job_runs_job_started (job,
    started_at), stopping after `limit` rows; without a job, one such read per
    registered job, merged: the table has no index on started_at alone, and a run
    every minute for a week is ten thousand rows of coins-deduct alone.
    """
    names = [get_job(job_name).name] if job_name else [job.name for job in JOBS]

    def newest(name: str) -> sa.Select[Any]:
        query = sa.select(runs).where(runs.c.job == name)
        if failed_only:
            query = query.where(runs.c.outcome == RunOutcome.FAILED)
        return query.order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)

    if len(names) == 1:
        return newest(names[0])
    # SQLite allows ORDER BY and LIMIT only on a whole compound select: each part is a
    # subquery of its own
    merged = sa.union_all(*(sa.select(newest(name).subquery()) for name in names)).subquery()
    return (
        sa.select(merged).order_by(merged.c.started_at.desc(), merged.c.run_id.desc()).limit(limit)
    )


def history(
    session: Session, job_name: str | None, *, limit: int, failed_only: bool
) -> HistoryReport:
    """`jobs history`: see `history_query`."""
    query = history_query(job_name, limit=limit, failed_only=failed_only)
    records = [
        RunRecord(
            run_id=row.run_id,
            job=row.job,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_seconds=(row.finished_at - row.started_at).total_seconds(),
            outcome=row.outcome,
            reason=row.reason,
            counts=row.counts,
            error=row.error,
            host=row.host,
            run_now=row.run_now,
            run_uuid=row.run_uuid,
        )
        for row in session.execute(query)
    ]
    job = get_job(job_name).name if job_name else None
    return HistoryReport(job=job, failed_only=failed_only, limit=limit, runs=records)
