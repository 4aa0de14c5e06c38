"""`saathii-ops wallets audit`."""

import typer

from saathii_ops.commands.common import DryRunOption, JsonOption, run_registered_job

app = typer.Typer(help="Wallets and their ledger.", no_args_is_help=True)


@app.command()
def audit(
    ctx: typer.Context, dry_run: DryRunOption = False, json_output: JsonOption = False
) -> None:
    """Wallets whose balance differs from their ledger rows; calls the app changed after we
    settled them; ongoing calls with an end_time; ongoing calls charged more or less than
    their elapsed minutes require. Exit 1 when anything is found."""
    run_registered_job(ctx, "wallets-audit", dry_run=dry_run, json_output=json_output)
