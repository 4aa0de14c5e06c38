"""`saathii-ops coins deduct`."""

import typer

from saathii_ops.cli.common import DryRunOption, JsonOption, run_registered_job
from saathii_ops.cli.help import WholeHelpGroup

app = typer.Typer(cls=WholeHelpGroup, help="Coin billing.", no_args_is_help=True)


@app.command()
def deduct(
    ctx: typer.Context, dry_run: DryRunOption = False, json_output: JsonOption = False
) -> None:
    """Bill every ongoing call per started minute; end the calls the caller cannot pay for.

    Skipped calls: those it could not bill (half-ended: the app set their end_time).
    Calls planned again: their caller's rows changed between planning and locking, so the
    run planned them anew. Held calls: another session holds a row they need; the next run
    bills them."""
    run_registered_job(ctx, "coins-deduct", dry_run=dry_run, json_output=json_output)
