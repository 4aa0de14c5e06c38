"""`saathii-ops wallets audit | reconcile`."""

from __future__ import annotations

from typing import Annotated

import typer

from saathii_ops.cli.common import (
    DryRunOption,
    JsonOption,
    app_context,
    read_only,
    run_registered_job,
)
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.errors import UsageError
from saathii_ops.output.render import show, stdout_console
from saathii_ops.runtime.registry import get_job

app = typer.Typer(cls=WholeHelpGroup, help="Wallets and their ledger.", no_args_is_help=True)


@app.command(help=get_job("wallets-audit").help)
def audit(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    resolved: Annotated[
        bool,
        typer.Option(
            "--resolved",
            help="List the findings `wallets reconcile --apply` resolved, with their "
            "corrections (newest first), instead of auditing.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    if not resolved:
        run_registered_job(ctx, "wallets-audit", dry_run=dry_run)
        return
    if dry_run:
        raise UsageError("--resolved lists past corrections and changes nothing: drop --dry-run")
    from saathii_ops.jobs import wallet_audit

    app = app_context(ctx)
    with read_only(app) as (session, _):
        report = wallet_audit.resolved(session)
    title = "wallets audit: resolved findings"
    show(stdout_console(), report, json_output=app.json_output, title=title)


@app.command()
def reconcile(
    ctx: typer.Context,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply", help="Make the corrections (with --reason); without it: a preview."
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why, recorded with each correction (required by --apply).",
            show_default=False,
        ),
    ] = None,
    wallet: Annotated[
        int | None,
        typer.Option(
            "--wallet",
            metavar="ID",
            help="Only this wallet's findings, and the calls of its owner.",
            show_default=False,
        ),
    ] = None,
    call: Annotated[
        int | None,
        typer.Option("--call", metavar="ID", help="Only this call's findings.", show_default=False),
    ] = None,
    reverse: Annotated[
        bool,
        typer.Option(
            "--reverse",
            help="A call paid twice: take the app's second payment back (a negative 'earn' "
            "row and the same change to the listener's balance).",
        ),
    ] = False,
    accept: Annotated[
        bool, typer.Option("--accept", help="A call paid twice: let the second payment stand.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Corrections for what `wallets audit` finds: an erased debit brings the balance to the
    ledger (never below zero), a call paid twice is reversed or accepted, a half-ended call
    is completed; a wallet holding less than its ledger is only named. Each correction is
    recorded in ops_corrections; history is never edited. Exit 0 (a preview changes
    nothing)."""
    from saathii_ops.jobs.reconcile_plan import ACCEPT, REVERSE, Scope
    from saathii_ops.runtime.wallet_corrections import reconcile_wallets

    if reverse and accept:
        raise UsageError("--reverse and --accept exclude each other: choose one")
    if reason is not None and not reason.strip():
        raise UsageError("--reason is empty: say why")
    if apply and reason is None:
        raise UsageError("--apply needs --reason TEXT: it is recorded with each correction")
    app = app_context(ctx)
    scope = Scope(
        wallet_id=wallet,
        call_id=call,
        paid_twice=REVERSE if reverse else ACCEPT if accept else None,
    )
    report = reconcile_wallets(
        app.engine, app.settings, app.now, apply=apply, scope=scope, reason=reason
    )
    show(stdout_console(), report, json_output=app.json_output)
