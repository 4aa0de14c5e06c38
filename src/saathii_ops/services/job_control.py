"""Pausing and resuming jobs (SPEC §9), and the registered jobs with their state.

A pause is a row of `ops_job_controls`, in the database every host and every
Kubernetes pod reads, so it holds everywhere at once; the runner records a run
of a paused job as skipped. Pausing is not a job run: the command that calls
`set_paused` commits its one upsert itself (there is no plan to preview and no
run to record).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from saathii_ops.db import is_sqlite
from saathii_ops.jobs import JOBS, get_job
from saathii_ops.models import JobControl, JobRun, table
from saathii_ops.reports import Report
from saathii_ops.services.scheduling.expressions import job_schedule
from saathii_ops.settings import Settings

controls = table(JobControl)
runs = table(JobRun)


def is_paused(session: Session, job_name: str) -> bool:
    paused = session.scalar(sa.select(JobControl.paused).where(JobControl.job == job_name))
    return bool(paused)


@dataclass
class PauseReport(Report):
    job: str
    paused: bool
    was_paused: bool
    changed_at: datetime | None
    changed_by: str | None


def set_paused(
    session: Session, job_name: str, *, paused: bool, now: datetime, changed_by: str
) -> PauseReport:
    """Pause or resume a job for every host. Setting the state it already has changes
    nothing, so the row keeps who paused it and when."""
    job = get_job(job_name)
    was_paused = is_paused(session, job.name)
    insert = (sqlite.insert if is_sqlite(session) else postgresql.insert)(controls)
    statement = insert.values(
        job=job.name, paused=paused, changed_at=now, changed_by=changed_by
    ).on_conflict_do_update(
        index_elements=[controls.c.job],
        set_={"paused": paused, "changed_at": now, "changed_by": changed_by},
        where=controls.c.paused != paused,
    )
    session.execute(statement)
    row = session.execute(
        sa.select(controls.c.changed_at, controls.c.changed_by).where(controls.c.job == job.name)
    ).one()
    return PauseReport(job.name, paused, was_paused, row.changed_at, row.changed_by)


@dataclass
class JobState:
    job: str
    command: str
    schedule: str
    timezone: str  # where the schedule is read: the business timezone, or "server"
    paused: bool
    paused_by: str | None
    paused_at: datetime | None
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
    names = [job.name for job in JOBS]
    paused = {
        row.job: row
        for row in session.execute(
            sa.select(controls).where(controls.c.job.in_(names), controls.c.paused.is_(True))
        )
    }
    last = _newest_runs(session, names)
    last_failure = _newest_runs(session, names, runs.c.outcome == "failed")

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
