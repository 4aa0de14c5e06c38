"""`saathii-ops presence cleanup`."""

import typer

from saathii_ops.cli.common import DryRunOption, JsonOption, run_registered_job
from saathii_ops.cli.help import WholeHelpGroup

app = typer.Typer(cls=WholeHelpGroup, help="User presence.", no_args_is_help=True)


@app.command()
def cleanup(
    ctx: typer.Context, dry_run: DryRunOption = False, json_output: JsonOption = False
) -> None:
    """Mark users offline who have not been seen for the inactive limit; clear stale busy flags.

    Cleared wait time: callers whose wait time ran out, on no ongoing call; cleared no
    call: users marked busy, on no ongoing call. Still online: the users online after the
    run. Held by another session: rows the app was writing; the next run changes them."""
    run_registered_job(ctx, "presence-cleanup", dry_run=dry_run, json_output=json_output)
