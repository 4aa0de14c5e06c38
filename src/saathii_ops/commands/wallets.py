"""`saathii-ops wallets audit`."""

import typer

from saathii_ops.commands.common import JsonOption, app_context, read_only, show_report
from saathii_ops.services import wallet_audit

app = typer.Typer(help="Wallets and their ledger.", no_args_is_help=True)


@app.command()
def audit(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Wallets whose balance differs from their ledger rows; ongoing calls charged more or
    less than their elapsed minutes require. Exit 1 when anything is found."""
    app = app_context(ctx, json_output)
    with read_only(app) as (session, now):
        report = wallet_audit.audit(session, now, app.settings)
    show_report(app, "wallets audit", report)
    if report.failed_rows:
        raise typer.Exit(1)
