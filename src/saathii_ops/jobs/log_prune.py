"""Log pruning (SPEC §9, §10): the job logs cron writes, and the audit table of runs.

Cron appends each job's output to `<log dir>/<job>.log` (see `log_path`). A log
that is appended to every minute never grows old, so pruning first rotates:
every non-empty `<job>.log` is renamed `<job>.log.<UTC stamp of now>` (a run
still writing keeps writing into the renamed file: nothing is lost). Then it
deletes the rotated logs last written more than N days ago. Only these names,
for the jobs of the registry, and only regular files are touched: never another
file of the log directory.

Order of a real run: the audit rows are deleted first and the files after, so
that a database error stops the run before any file is touched. The files
cannot be part of the transaction: if the commit itself then fails, the logs
are gone but the rows are kept, which the next run prunes — log files are not
money, and a failed prune loses nothing else (docs/decisions.md#runs).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from saathii_ops.db.tables import RunOutcome
from saathii_ops.db.tables import ops_job_runs as runs
from saathii_ops.reports import Report
from saathii_ops.runtime.context import RunContext
from saathii_ops.runtime.registry import JOBS

ROTATED_STAMP = "%Y%m%dT%H%M%SZ"
ROTATED = re.compile(r"(?P<log>.+\.log)\.\d{8}T\d{6}Z")


def log_path(log_dir: Path, job_name: str) -> Path:
    """Where cron appends a job's output."""
    return log_dir / f"{job_name}.log"


@dataclass
class LogPruneReport(Report):
    log_dir: str
    logs_before: datetime
    runs_before: datetime
    failed_runs_before: datetime
    logs_rotated: int
    logs_deleted: int
    runs_deleted: int
    failed_runs_deleted: int
    rotated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _LogFile:
    name: str
    mtime: float
    size: int


@dataclass(frozen=True)
class PruneOptions:
    days: int | None = None  # `logs prune --days`


def prune(run: RunContext[PruneOptions | None]) -> LogPruneReport:
    """Prune logs and ok/skipped runs older than `days` (default: the retention setting),
    failed runs older than the failed-run retention (never sooner than `days`)."""
    session, now, settings, apply = run.session, run.now, run.settings, run.apply
    days = (run.options.days if run.options else None) or settings.log_retention_days
    logs_before = now - timedelta(days=days)
    failed_before = now - timedelta(days=max(days, settings.failed_run_retention_days))

    def prune_runs(old: sa.ColumnElement[bool]) -> int:
        if apply:
            deleted = cast(CursorResult[Any], session.execute(sa.delete(runs).where(old)))
            return deleted.rowcount
        return session.execute(sa.select(sa.func.count()).select_from(runs).where(old)).scalar_one()

    runs_deleted = prune_runs(
        sa.and_(
            runs.c.outcome.in_((RunOutcome.OK, RunOutcome.SKIPPED)), runs.c.started_at < logs_before
        )
    )
    failed_deleted = prune_runs(
        sa.and_(runs.c.outcome == RunOutcome.FAILED, runs.c.started_at < failed_before)
    )

    log_dir = settings.log_dir
    rotations = _rotations(log_dir, now)
    candidates = _rotated_logs(log_dir) + [
        _LogFile(target, live.mtime, live.size) for live, target in rotations
    ]
    old_logs = sorted(f.name for f in candidates if f.mtime < logs_before.timestamp())
    if apply:
        for live, target in rotations:
            os.rename(log_dir / live.name, log_dir / target)
        for name in old_logs:
            (log_dir / name).unlink()
    return LogPruneReport(
        log_dir=str(log_dir),
        logs_before=logs_before,
        runs_before=logs_before,
        failed_runs_before=failed_before,
        logs_rotated=len(rotations),
        logs_deleted=len(old_logs),
        runs_deleted=runs_deleted,
        failed_runs_deleted=failed_deleted,
        rotated=[f"{live.name} -> {target}" for live, target in rotations],
        deleted=old_logs,
    )


def _our_log_names(log_dir: Path) -> set[str]:
    return {log_path(log_dir, job.name).name for job in JOBS}


def _regular_file(path: Path) -> _LogFile | None:
    """The file's name and mtime; None unless it is a regular file (never a symlink)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return _LogFile(path.name, info.st_mtime, info.st_size)


def _rotations(log_dir: Path, now: datetime) -> list[tuple[_LogFile, str]]:
    """The live logs to rotate now, each with its new name. An empty log has nothing
    to keep; a name already taken (a second prune at the same instant) leaves the log."""
    planned = []
    for name in sorted(_our_log_names(log_dir)):
        live = _regular_file(log_dir / name)
        target = f"{name}.{now.astimezone(UTC).strftime(ROTATED_STAMP)}"
        if live and live.size and not (log_dir / target).exists():
            planned.append((live, target))
    return planned


def _rotated_logs(log_dir: Path) -> list[_LogFile]:
    """The rotated logs of our jobs already in the directory."""
    if not log_dir.is_dir():
        return []
    ours = _our_log_names(log_dir)
    found = []
    for entry in os.scandir(log_dir):
        match = ROTATED.fullmatch(entry.name)
        if match and match["log"] in ours and (log_file := _regular_file(Path(entry.path))):
            found.append(log_file)
    return found
