"""`saathii-ops logs prune`: the job logs and the job-runs audit table."""

from __future__ import annotations

from typing import Annotated

import typer

from saathii_ops.cli.common import DryRunOption, JsonOption, run_registered_job
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.runtime.registry import get_job

app = typer.Typer(cls=WholeHelpGroup, help="The jobs' logs.", no_args_is_help=True)


@app.command(help=get_job("logs-prune").help)
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
    from saathii_ops.jobs.log_prune import PruneOptions

    run_registered_job(ctx, "logs-prune", dry_run=dry_run, options=PruneOptions(days))
