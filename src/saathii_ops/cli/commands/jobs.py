"""`saathii-ops jobs list | pause | resume | history`: the registered jobs, their pause
switches and their recent runs."""

from __future__ import annotations

from typing import Annotated

import typer

from saathii_ops.cli.common import JsonOption, app_context, complete_job_name, read_only
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.output.jobs_screen import render_history, render_jobs, render_pause
from saathii_ops.output.render import stdout_console
from saathii_ops.runtime.identity import user_name
from saathii_ops.runtime.registry import get_job

app = typer.Typer(
    cls=WholeHelpGroup,
    help="The registered jobs; pause and resume them on every host; their recent runs.",
    no_args_is_help=True,
)

HISTORY_LIMIT = 20

JobArgument = Annotated[
    str,
    typer.Argument(help="A job name, as `jobs list` shows it.", autocompletion=complete_job_name),
]


@app.command("list")
def list_jobs(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every job: its schedule, whether it is paused (since when, by whom, why), its last run."""
    from saathii_ops.db.engine import transaction
    from saathii_ops.db.schema import require_head
    from saathii_ops.jobs import job_control

    app = app_context(ctx)
    require_head(app.engine)
    with transaction(app.engine, read_only=True) as session:
        states = job_control.list_jobs(session, app.settings)
    render_jobs(stdout_console(), states, json_output=app.json_output)


def _set_paused(ctx: typer.Context, job: str, *, paused: bool, reason: str | None) -> None:
    import socket
    from datetime import datetime

    from sqlalchemy.orm import Session

    from saathii_ops.jobs import job_control
    from saathii_ops.runtime.runner import operator_change

    app = app_context(ctx)
    get_job(job)  # an unknown name is a usage error before the database is asked

    def set_paused(session: Session, now: datetime) -> job_control.PauseReport:
        return job_control.set_paused(
            session,
            job,
            paused=paused,
            now=now,
            changed_by=f"{user_name()}@{socket.gethostname()}",
            reason=reason,
        )

    # not a job run: one upsert
    report = operator_change(app.engine, app.settings, set_paused, now=app.now)
    render_pause(stdout_console(), report, json_output=app.json_output)


@app.command()
def pause(
    ctx: typer.Context,
    job: JobArgument,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why, shown by `jobs list` and `status` until the job is resumed.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Pause a job on every host: its runs are recorded as skipped until it is resumed."""
    _set_paused(ctx, job, paused=True, reason=reason)


@app.command()
def resume(ctx: typer.Context, job: JobArgument, json_output: JsonOption = False) -> None:
    """Resume a paused job: its next scheduled run does its work."""
    _set_paused(ctx, job, paused=False, reason=None)


@app.command()
def history(
    ctx: typer.Context,
    job: Annotated[
        str | None,
        typer.Argument(
            help="A job name, as `jobs list` shows it; default: every job.",
            show_default=False,
            autocompletion=complete_job_name,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            max=10_000,
            help=f"How many runs, newest first; default {HISTORY_LIMIT}.",
            show_default=False,
        ),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only the failed runs.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Recent runs, newest first: start, duration, outcome and reason, counts, error, host."""
    from saathii_ops.jobs import job_control

    app = app_context(ctx)
    with read_only(app) as (session, _now):
        report = job_control.history(session, job, limit=limit or HISTORY_LIMIT, failed_only=failed)
    render_history(stdout_console(), report, json_output=app.json_output, verbose=app.verbose)
