"""`saathii-ops demo`: the whole product on the embedded database, in one command."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from saathii_ops.cli.common import JsonOption, app_context
from saathii_ops.output.demo_screen import render_demo
from saathii_ops.output.render import emit_json, render_mapping, show, stdout_console
from saathii_ops.output.status_screen import render_status


def demo(
    ctx: typer.Context,
    reset: Annotated[bool, typer.Option("--reset", help="Start from an empty database.")] = False,
    users: Annotated[int, typer.Option(min=8, max=1_000_000, help="How many sample users.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the sample data.")] = 7,
    json_output: JsonOption = False,
) -> None:
    """Create (or --reset) the embedded database, fill it with sample data, run every job
    once: one line per job, the status, what to try next (with the global -v: every row
    each job changed, and the whole status).

    A job's line gives its counts that are not 0 (as `--help` of the job explains them);
    "nothing to do, nothing found" when all are."""
    from saathii_ops.demo.run import run_demo

    app = app_context(ctx)
    result = run_demo(app, reset=reset, users=users, seed=seed)
    console = stdout_console()
    if app.json_output:
        emit_json(console, result)
        return
    if not app.verbose:
        command = "saathii-ops"
        if app.database_url_option is not None:
            command += f" --database-url {shlex.quote(result.url)}"
        render_demo(console, result, command=command)
        return
    render_mapping(console, "demo database", {"database": result.url})
    if result.sample is None:
        console.print("kept the existing sample data (--reset starts afresh)")
    else:
        render_mapping(console, "sample data added", result.sample.as_dict())
    for run in result.runs:
        show(console, run, json_output=False)
    if result.status is not None:
        render_status(console, result.status)
