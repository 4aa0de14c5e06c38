"""`saathii-ops jobs list | pause | resume`: the registered jobs and their pause switches."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from saathii_ops.commands.common import JsonOption, app_context
from saathii_ops.db import database_now, transaction
from saathii_ops.identity import user_name
from saathii_ops.render import emit_json, render_mapping, render_rows, stdout_console
from saathii_ops.schema import require_head
from saathii_ops.services import job_control

app = typer.Typer(
    help="The registered jobs; pause and resume them on every host.", no_args_is_help=True
)

JobArgument = Annotated[str, typer.Argument(help="A job name, as `jobs list` shows it.")]


@app.command("list")
def list_jobs(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every job: its schedule, whether it is paused, its last run."""
    app = app_context(ctx, json_output)
    require_head(app.engine)
    with transaction(app.engine, read_only=True) as session:
        states = job_control.list_jobs(session, app.settings)
    console = stdout_console()
    if app.json_output:
        emit_json(console, states)
        return
    rows = [
        {
            "job": state.job,
            "schedule": state.schedule
            + ("" if state.timezone == "server" else f" ({state.timezone})"),
            "paused": f"since {state.paused_at:%Y-%m-%d %H:%M} by {state.paused_by}"
            if state.paused_at
            else "no",
            "last run": _last_run(state),
        }
        for state in states
    ]
    render_rows(console, "jobs", rows)


def _last_run(state: job_control.JobState) -> str:
    if state.last_started_at is None:
        return "never"
    outcome = state.last_outcome or ""
    if state.last_reason:
        outcome += f" ({state.last_reason})"
    text = f"{outcome} at {state.last_started_at:%Y-%m-%d %H:%M:%S}"
    return f"{text}: {state.last_error}" if state.last_error else text


def _set_paused(ctx: typer.Context, job: str, *, paused: bool, json_output: bool) -> None:
    app = app_context(ctx, json_output)
    require_head(app.engine)
    # not a job run: one upsert, committed here (see services/job_control.py)
    with transaction(app.engine) as session:
        report = job_control.set_paused(
            session,
            job,
            paused=paused,
            now=app.now or database_now(session),
            changed_by=f"{user_name()}@{socket.gethostname()}",
        )
        session.commit()
    console = stdout_console()
    if app.json_output:
        emit_json(console, report)
        return
    state = "paused" if paused else "running"
    title = f"{report.job}: {state}" + (" (it already was)" if report.was_paused == paused else "")
    render_mapping(
        console, title, {"changed_at": report.changed_at, "changed_by": report.changed_by}
    )


@app.command()
def pause(ctx: typer.Context, job: JobArgument, json_output: JsonOption = False) -> None:
    """Pause a job on every host: its runs are recorded as skipped until it is resumed."""
    _set_paused(ctx, job, paused=True, json_output=json_output)


@app.command()
def resume(ctx: typer.Context, job: JobArgument, json_output: JsonOption = False) -> None:
    """Resume a paused job."""
    _set_paused(ctx, job, paused=False, json_output=json_output)
