"""What every command shares: the typed context, the `--json` and `--dry-run` options,
and running a registered job."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from saathii_ops.context import AppContext
from saathii_ops.errors import UsageError
from saathii_ops.jobs import JobService, get_job
from saathii_ops.render import render_run, stdout_console
from saathii_ops.runner import run_job

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="One JSON document on stdout (also accepted before the command)."),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Show what a real run at the same instant would change; change nothing."
    ),
]


def app_context(ctx: typer.Context, json_output: bool = False) -> AppContext:
    app = ctx.find_object(AppContext)
    assert app is not None, "the root callback sets the context"
    if json_output:
        app.json_output = True
    return app


def run_registered_job(
    ctx: typer.Context,
    job_name: str,
    *,
    dry_run: bool,
    json_output: bool,
    service: JobService | None = None,
) -> None:
    """Run one job through the runner, render its result, exit with its code."""
    app = app_context(ctx, json_output)
    job = get_job(job_name)
    result = run_job(app.engine, app.settings, job, now=app.now, dry_run=dry_run, service=service)
    render_run(stdout_console(), result, json_output=app.json_output)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def not_built(feature: str) -> typer.Typer:
    """A command group a later issue builds: registered now so the surface is complete.

    Any subcommand and option gets "not built yet" (exit 2), not "no such command".
    """

    class NotBuiltGroup(TyperGroup):
        def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
            if any(arg in ("--help", "-h") for arg in args):
                return super().parse_args(ctx, args)
            raise UsageError(f"{feature} is not built yet")

    return typer.Typer(cls=NotBuiltGroup, help=f"{feature} (not built yet).")
