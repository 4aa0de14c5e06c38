"""`saathii-ops calls cleanup`."""

import typer

from saathii_ops.cli.common import DryRunOption, JsonOption, run_registered_job
from saathii_ops.cli.help import WholeHelpGroup

app = typer.Typer(cls=WholeHelpGroup, help="Calls.", no_args_is_help=True)


@app.command()
def cleanup(
    ctx: typer.Context, dry_run: DryRunOption = False, json_output: JsonOption = False
) -> None:
    """End the calls that should have ended (a silent party, too long, wait time up);
    bill what they owe and settle them.

    Skipped calls: those it could not settle (half-ended: the app set their end_time).
    Calls planned again: their rows changed between planning and locking, so the run
    planned them anew. Held calls: another session holds a row they need; the next run
    ends them."""
    run_registered_job(ctx, "calls-cleanup", dry_run=dry_run, json_output=json_output)
