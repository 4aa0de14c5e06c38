"""The demo: an embedded database with sample data, one run of every job, then `status`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.cli.context import AppContext
from saathii_ops.db import schema, tables
from saathii_ops.db.engine import display_url
from saathii_ops.demo import sample_data
from saathii_ops.demo.sample_data import SampleReport
from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import JOBS
from saathii_ops.runtime.runner import RunResult, operator_change, run_job
from saathii_ops.scheduling import targets
from saathii_ops.scheduling.schedule_target import running_target
from saathii_ops.settings import UrlSource, embedded_database_path
from saathii_ops.status import collect as status
from saathii_ops.status.report import StatusReport


@dataclass
class DemoResult:
    url: str
    sample: SampleReport | None
    runs: list[RunResult] = field(default_factory=list)
    status: StatusReport | None = None  # after the runs, as `saathii-ops status` shows it


def demo_context(app: AppContext) -> AppContext:
    """The demo never touches a server: the embedded database, or an SQLite `--database-url`."""
    if app.database_url_option is None:
        embedded = f"sqlite:///{embedded_database_path()}"
        app = dataclasses.replace(app, chosen_database=(embedded, UrlSource.EMBEDDED))
    if app.url.get_backend_name() != "sqlite":
        raise UsageError(
            "the demo fills a database with sample data: give it an SQLite URL, never a server"
        )
    return app


def run_demo(app: AppContext, *, reset: bool, users: int, seed: int) -> DemoResult:
    demo_app = demo_context(app)
    try:
        return _run_demo(demo_app, reset=reset, users=users, seed=seed)
    finally:
        if demo_app is not app:  # the command's own context is disposed by the CLI
            demo_app.dispose()


def _run_demo(app: AppContext, *, reset: bool, users: int, seed: int) -> DemoResult:
    if reset:
        _delete_sqlite_files(app.url.database)
    schema.upgrade(app.engine)

    def fill_if_empty(session: Session, now: datetime) -> SampleReport | None:
        if session.scalar(sa.select(sa.func.count()).select_from(tables.users)) != 0:
            return None
        return sample_data.fill(session, now, app.settings, users=users, seed=seed)

    sample = operator_change(app.engine, app.settings, fill_if_empty, now=app.now)
    result = DemoResult(display_url(app.url), sample)
    # the demo's log pruning must never touch a real log directory such as /var/log/saathii
    settings = app.settings.model_copy(update={"log_dir": demo_log_dir(app)})
    for job in JOBS:
        result.runs.append(run_job(app.engine, settings, job, now=app.now, dry_run=False))
    result.status = status.collect(
        app.engine,
        app.settings,
        now=app.now,
        crontab=targets.installed_target(None),
        schedule_target=running_target(app.config_file, *app.database_url_and_source),
        database_source=app.database_source,
    )
    return result


def demo_log_dir(app: AppContext) -> Path:
    return Path(app.url.database or ".").resolve().parent / "demo-logs"


def _delete_sqlite_files(database: str | None) -> None:
    if not database or database == ":memory:":
        return
    base = Path(database)
    for path in [
        base,
        *base.parent.glob(base.name + "-*"),
        *base.parent.glob(base.name + ".*.lock"),
    ]:
        path.unlink(missing_ok=True)
