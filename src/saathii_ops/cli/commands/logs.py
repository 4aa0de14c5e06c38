"""`saathii-ops logs prune`: the job logs and the job-runs audit table."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from saathii_ops.cli.common import DryRunOption, JsonOption, run_registered_job
from saathii_ops.cli.help import WholeHelpGroup

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from saathii_ops.reports import Report
    from saathii_ops.runtime.wiring import JobService
    from saathii_ops.settings import Settings

app = typer.Typer(cls=WholeHelpGroup, help="The jobs' logs.", no_args_is_help=True)


def prune_for(days: int | None) -> JobService:
    def service(session: Session, now: datetime, settings: Settings, *, apply: bool) -> Report:
        from saathii_ops.jobs import log_prune

        return log_prune.prune(session, now, settings, apply=apply, days=days)

    return service


@app.command()
def prune(
    ctx: typer.Context,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            help="Keep this many days; default: the log_retention_days setting (7).",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Rotate the jobs' logs and delete those older than N days; prune the job-runs audit
    table (failed runs after failed_run_retention_days, 30)."""
    run_registered_job(
        ctx, "logs-prune", dry_run=dry_run, json_output=json_output, service=prune_for(days)
    )
